package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/switchyard/switchyard/internal/cli/kit"
	"github.com/switchyard/switchyard/switch/api"
)

// `switchyard user`: the web console's users, through the running switch's
// admin API with an admin token (the registry keeps them, every change in the
// oplog). The password is read from standard input, never from the command
// line (where ps and the shell history would keep it).

const userUsage = `Usage: switchyard user COMMAND [--admin URL] [--token T]

The web console's users (http://ADMIN/console/). Needs the running switch and an
admin token ($SWITCHYARD_TOKEN). The password is read from standard input (one
line; at least 10 characters), never taken from the command line.

Commands:
  add NAME ROLE     add a user; ROLE is operator, reviewer, analyst or admin
  passwd NAME       set a new password
  disable NAME      disable a user (its console sessions end at their next request)
  enable NAME       enable a disabled user
  list              list the users

Example:
  printf '%s\n' "$PASSWORD" | switchyard user add alice operator
`

func init() {
	registerTool("user", "add, change and disable the web console's users", userUsage, []string{"add", "passwd", "disable", "enable", "list"}, runUser)
}

func runUser(env *Env, args []string) int {
	conn, rest, err := kit.ExtractConn(args, env.Getenv)
	if err != nil {
		return fail(env, "user: %v", err)
	}
	if conn.DataDir != "" {
		return fail(env, "user: --data is not supported: a user change needs the running switch and an admin token")
	}
	if len(rest) == 0 {
		_, _ = io.WriteString(env.Stderr, userUsage)
		return kit.ExitUsage
	}
	c := conn.Client()
	ctx := env.Ctx
	want := func(n int) bool {
		if len(rest) != n+1 {
			fmt.Fprintf(env.Stderr, "switchyard: user %s: want %d argument(s), got %q\n\n%s", rest[0], n, rest[1:], userUsage)
			return false
		}
		return true
	}
	var out any
	switch rest[0] {
	case "add":
		if !want(2) {
			return kit.ExitUsage
		}
		pw, err := readPassword(env)
		if err != nil {
			return fail(env, "user add %s: %v", rest[1], err)
		}
		err = c.Do(ctx, "POST", "/api/v1/users", api.UserRequest{Name: rest[1], Role: rest[2], Password: pw}, &out)
		if err != nil {
			return fail(env, "user add %s: %v", rest[1], err)
		}
	case "passwd":
		if !want(1) {
			return kit.ExitUsage
		}
		pw, err := readPassword(env)
		if err != nil {
			return fail(env, "user passwd %s: %v", rest[1], err)
		}
		if err := c.Do(ctx, "POST", "/api/v1/users/"+rest[1]+"/password", api.UserRequest{Password: pw}, &out); err != nil {
			return fail(env, "user passwd %s: %v", rest[1], err)
		}
	case "disable", "enable":
		if !want(1) {
			return kit.ExitUsage
		}
		if err := c.Do(ctx, "POST", "/api/v1/users/"+rest[1]+"/"+rest[0], nil, &out); err != nil {
			return fail(env, "user %s %s: %v", rest[0], rest[1], err)
		}
	case "list":
		if !want(0) {
			return kit.ExitUsage
		}
		if err := c.Do(context.WithoutCancel(ctx), "GET", "/api/v1/users", nil, &out); err != nil {
			return fail(env, "user list: %v", err)
		}
	default:
		fmt.Fprintf(env.Stderr, "switchyard: user: unknown command %q\n\n%s", rest[0], userUsage)
		return kit.ExitUsage
	}
	b, _ := json.MarshalIndent(out, "", "  ")
	fmt.Fprintln(env.Stdout, string(b))
	return kit.ExitOK
}

// readPassword reads the first line of standard input.
func readPassword(env *Env) (string, error) {
	if env.Stdin == nil {
		return "", fmt.Errorf("no standard input to read the password from")
	}
	line, err := bufio.NewReader(env.Stdin).ReadString('\n')
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		if err != nil {
			return "", fmt.Errorf("read the password from standard input: %v (pipe it in: printf '%%s\\n' \"$PASSWORD\" | switchyard user ...)", err)
		}
		return "", fmt.Errorf("empty password on standard input")
	}
	return line, nil
}
