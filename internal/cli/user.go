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
	"github.com/switchyard/switchyard/switch/registry"
)

// `switchyard user`: the web console's users, through the running switch's
// admin API with an admin token (the registry keeps them, every change in the
// oplog). The password is read from standard input, never from the command
// line (where ps and the shell history would keep it).

const userUsage = `Usage: switchyard user COMMAND [--json] [--admin URL] [--token T]

The web console's users (http://ADMIN/console/). Needs the running switch and an
admin token ($SWITCHYARD_TOKEN). The password is read from standard input (one
line; at least 10 characters), never taken from the command line.

Commands (each prints for people; --json prints the switch's answer, the user or
the users, as JSON for scripts):
  add NAME ROLE [--json]   add a user; ROLE is operator, reviewer, analyst or admin
  passwd NAME [--json]     set a new password
  disable NAME [--json]    disable a user (its console sessions end at their next request)
  enable NAME [--json]     enable a disabled user
  list [--json]            list the users (a table, times in the acquirer's zone, $SWITCHYARD_TIMEZONE)

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
	sub := rest[0]
	switch sub {
	case "add", "passwd", "disable", "enable", "list":
	default:
		fmt.Fprintf(env.Stderr, "switchyard: user: unknown command %q\n\n%s", sub, userUsage)
		return kit.ExitUsage
	}
	fs := newFlags(env, "user "+sub, "")
	fs.Usage = func() { _, _ = io.WriteString(env.Stderr, userUsage) }
	asJSON := fs.Bool("json", false, "print the switch's answer as JSON (the user, or the users)")
	pos, ok, code := parseInterleaved(fs, rest[1:])
	if !ok {
		return code
	}
	c := conn.Client()
	ctx := env.Ctx
	want := func(n int) bool {
		if len(pos) != n {
			fmt.Fprintf(env.Stderr, "switchyard: user %s: want %d argument(s), got %q\n\n%s", sub, n, pos, userUsage)
			return false
		}
		return true
	}
	var raw json.RawMessage
	switch sub {
	case "add":
		if !want(2) {
			return kit.ExitUsage
		}
		pw, err := readPassword(env)
		if err != nil {
			return fail(env, "user add %s: %v", pos[0], err)
		}
		err = c.Do(ctx, "POST", "/api/v1/users", api.UserRequest{Name: pos[0], Role: pos[1], Password: pw}, &raw)
		if err != nil {
			return fail(env, "user add %s: %v", pos[0], err)
		}
	case "passwd":
		if !want(1) {
			return kit.ExitUsage
		}
		pw, err := readPassword(env)
		if err != nil {
			return fail(env, "user passwd %s: %v", pos[0], err)
		}
		if err := c.Do(ctx, "POST", "/api/v1/users/"+pos[0]+"/password", api.UserRequest{Password: pw}, &raw); err != nil {
			return fail(env, "user passwd %s: %v", pos[0], err)
		}
	case "disable", "enable":
		if !want(1) {
			return kit.ExitUsage
		}
		if err := c.Do(ctx, "POST", "/api/v1/users/"+pos[0]+"/"+sub, nil, &raw); err != nil {
			return fail(env, "user %s %s: %v", sub, pos[0], err)
		}
	case "list":
		if !want(0) {
			return kit.ExitUsage
		}
		if err := c.Do(context.WithoutCancel(ctx), "GET", "/api/v1/users", nil, &raw); err != nil {
			return fail(env, "user list: %v", err)
		}
	}
	if *asJSON { // the answer as it always was printed
		var out any
		if err := json.Unmarshal(raw, &out); err != nil {
			return fail(env, "user %s: decode answer: %v", sub, err)
		}
		b, _ := json.MarshalIndent(out, "", "  ")
		fmt.Fprintln(env.Stdout, string(b))
		return kit.ExitOK
	}
	if sub == "list" {
		var us []registry.User
		if err := json.Unmarshal(raw, &us); err != nil {
			return fail(env, "user list: decode answer: %v", err)
		}
		loc, err := acquirerZone(env)
		if err != nil {
			return fail(env, "user list: %v", err)
		}
		var rows [][]string
		for _, u := range us {
			state := "enabled"
			if u.Disabled {
				state = "disabled"
			}
			rows = append(rows, []string{u.Name, u.Role, state, dash(u.CreatedBy), kit.LocalTime(u.CreatedAt, loc), kit.LocalTime(u.UpdatedAt, loc)})
		}
		kit.Table(env.Stdout, "NAME\tROLE\tSTATE\tCREATED BY\tCREATED\tUPDATED", rows)
		return kit.ExitOK
	}
	var u registry.User
	if err := json.Unmarshal(raw, &u); err != nil {
		return fail(env, "user %s: decode answer: %v", sub, err)
	}
	switch sub {
	case "add":
		fmt.Fprintf(env.Stdout, "user %s added, role %s: they log in at the console with the password given\n", u.Name, u.Role)
	case "passwd":
		fmt.Fprintf(env.Stdout, "user %s: new password set\n", u.Name)
	case "disable":
		fmt.Fprintf(env.Stdout, "user %s disabled: its console sessions end at their next request\n", u.Name)
	case "enable":
		fmt.Fprintf(env.Stdout, "user %s enabled\n", u.Name)
	}
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
