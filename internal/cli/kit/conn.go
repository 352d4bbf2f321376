package kit

import (
	"net/url"
	"strings"

	"github.com/switchyard/switchyard/internal/cli/apiclient"
)

// DefaultAdminURL is the admin API a command talks to when neither --admin nor
// $SWITCHYARD_ADMIN is given.
const DefaultAdminURL = "http://127.0.0.1:8080"

// Conn says where registry commands send their calls, as given on the command line.
type Conn struct {
	AdminURL string // --admin URL, default $SWITCHYARD_ADMIN, else DefaultAdminURL
	Token    string // --token T, default $SWITCHYARD_TOKEN
	DataDir  string // --data DIR: work on a stopped switch's data directory (the caller opens it)
}

// Client returns a client of the admin API at c.AdminURL with c.Token (for the
// --data mode, build an apiclient.Client with Handler instead).
func (c Conn) Client() *apiclient.Client {
	return &apiclient.Client{BaseURL: c.AdminURL, Token: c.Token}
}

// ExtractConn removes the connection flags --admin URL, --token T and --data DIR
// (anywhere in args, also written --flag=value or with one dash) and returns them
// with the remaining arguments. getenv (nil: none) supplies SWITCHYARD_ADMIN when
// --admin is not given and SWITCHYARD_TOKEN when --token is not given.
func ExtractConn(args []string, getenv func(string) string) (Conn, []string, error) {
	c := Conn{AdminURL: DefaultAdminURL}
	targets := map[string]*string{"admin": &c.AdminURL, "token": &c.Token, "data": &c.DataDir}
	tokenGiven, adminGiven := false, false
	var rest []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			rest = append(rest, args[i:]...)
			break
		}
		name := strings.TrimLeft(a, "-")
		if len(a)-len(name) < 1 || len(a)-len(name) > 2 {
			rest = append(rest, a)
			continue
		}
		name, val, hasVal := strings.Cut(name, "=")
		dst, ok := targets[name]
		if !ok {
			rest = append(rest, a)
			continue
		}
		if !hasVal {
			if i+1 >= len(args) {
				return c, nil, Usagef("flag --%s needs a value", name)
			}
			i++
			val = args[i]
		}
		*dst = val
		tokenGiven = tokenGiven || name == "token"
		adminGiven = adminGiven || name == "admin"
	}
	if !tokenGiven && getenv != nil {
		c.Token = getenv("SWITCHYARD_TOKEN")
	}
	if !adminGiven && getenv != nil {
		if u := getenv("SWITCHYARD_ADMIN"); u != "" {
			c.AdminURL = u
		}
	}
	if c.AdminURL == "" {
		return c, nil, Usagef("--admin: empty URL")
	}
	// Checked here, where the URL parser's own complaint about 127.0.0.1:8080
	// ("first path segment in URL cannot contain colon") came at the first call.
	if u, err := url.Parse(c.AdminURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		like := DefaultAdminURL
		if !strings.Contains(c.AdminURL, "://") {
			like = "http://" + c.AdminURL // host:port, the scheme left out
		}
		return c, nil, Usagef("--admin %q (or $SWITCHYARD_ADMIN): want an http or https URL with a host, such as %s", c.AdminURL, like)
	}
	return c, rest, nil
}
