package cli

import (
	"fmt"
	"net/url"
	"strconv"
	"time"

	"github.com/switchyard/switchyard/internal/cli/kit"
	"github.com/switchyard/switchyard/switch/registry"
	"github.com/switchyard/switchyard/switch/sched"
)

func init() {
	registerTool("task", "scheduled tasks: list, history, run now, define under review", "Usage:\n"+taskUsage,
		[]string{"list", "history", "run-now", "put"}, runTask)
}

const taskUsage = `switchyard task list [--json]
switchyard task history [NAME] [--limit N] [--json]      (all tasks without NAME)
switchyard task run-now NAME [--json]
switchyard task put NAME --kind K --schedule CRON [--timezone TZ] [--param k=v ...] [--timeout 30m] [--disabled] [--reason TEXT]
  put requests a change that a different reviewer approves (switchyard change approve ID)
  with --admin URL --token T (default $SWITCHYARD_TOKEN), or --data DIR (read-only)`

// params collects repeated --param k=v flags.
type params map[string]string

func (p params) String() string { return fmt.Sprint(map[string]string(p)) }
func (p params) Set(s string) error {
	for i := 0; i < len(s); i++ {
		if s[i] == '=' {
			p[s[:i]] = s[i+1:]
			return nil
		}
	}
	return fmt.Errorf("%q: want key=value", s)
}

func runTask(env *Env, args []string) int {
	c, rest, done, err := adminClient(env, args)
	if err != nil {
		return fail(env, "task: %v", err)
	}
	defer done()
	if len(rest) == 0 || rest[0] == "-h" || rest[0] == "--help" || rest[0] == "help" {
		fmt.Fprintln(env.Stderr, "Usage:\n"+taskUsage)
		if len(rest) == 0 {
			return 2
		}
		return 0
	}
	sub, rest := rest[0], rest[1:]
	fs := newFlags(env, "task "+sub, "")
	fs.Usage = func() { fmt.Fprintln(env.Stderr, "Usage:\n"+taskUsage+"\n\nFlags:"); fs.PrintDefaults() }
	asJSON := fs.Bool("json", false, "print JSON")
	printRuns := func(rs []sched.Run) int {
		if *asJSON {
			return printJSON(env, rs)
		}
		loc, err := acquirerZone(env)
		if err != nil {
			return fail(env, "task %s: %v", sub, err)
		}
		// kit.Table escapes control characters: a task's output or error quotes
		// what others wrote (a webhook host's answer, a file's contents).
		rows := make([][]string, 0, len(rs))
		for _, r := range rs {
			slot := "run-now by " + r.By
			if !r.Slot.IsZero() {
				slot = kit.LocalTime(r.Slot, loc)
			}
			took := "-"
			if !r.End.IsZero() {
				took = r.End.Sub(r.Start).Round(time.Millisecond).String()
			}
			msg := r.Output
			if r.Error != "" {
				msg = r.Error
			}
			rows = append(rows, []string{r.Task, slot, kit.LocalTime(r.Start, loc), took, r.Outcome, strconv.Itoa(r.Missed), msg})
		}
		kit.Table(env.Stdout, "TASK\tSLOT\tSTART\tTOOK\tOUTCOME\tMISSED\tOUTPUT / ERROR", rows)
		return 0
	}
	switch sub {
	case "list":
		if ok, code := parseFlagsOnly(env, fs, rest); !ok {
			return code
		}
		var vs []sched.View
		if err := c.Do(env.Ctx, "GET", "/api/v1/tasks", nil, &vs); err != nil {
			return fail(env, "task list: %v", err)
		}
		if *asJSON {
			return printJSON(env, vs)
		}
		loc, err := acquirerZone(env)
		if err != nil {
			return fail(env, "task list: %v", err)
		}
		rows := make([][]string, 0, len(vs)) // kit.Table escapes control characters (a task's error quotes what it read)
		for _, v := range vs {
			last, state := "-", "ok"
			if v.LastRun != nil {
				last = kit.LocalTime(v.LastRun.Start, loc) + " " + v.LastRun.Outcome
			}
			switch {
			case v.Error != "":
				state = "error: " + v.Error
			case v.Disabled:
				state = "disabled"
			case v.Failing:
				state = "FAILING"
			}
			rows = append(rows, []string{v.Name, v.Kind, v.Schedule, dash(v.TimeZone), kit.LocalTime(v.Next, loc), last, state, v.Source})
		}
		kit.Table(env.Stdout, "NAME\tKIND\tSCHEDULE\tTIMEZONE\tNEXT\tLAST\tSTATE\tSOURCE", rows)
		return 0
	case "history":
		limit := fs.Int("limit", 20, "the newest this many runs")
		pos, ok, code := parseInterleaved(fs, rest)
		if !ok {
			return code
		}
		name := "all"
		if len(pos) == 1 {
			name = pos[0]
		} else if len(pos) > 1 {
			return fail(env, "task history takes at most one task name")
		}
		var rs []sched.Run
		if err := c.Do(env.Ctx, "GET", fmt.Sprintf("/api/v1/tasks/%s/history?limit=%d", url.PathEscape(name), *limit), nil, &rs); err != nil {
			return fail(env, "task history: %v", err)
		}
		return printRuns(rs)
	case "run-now":
		pos, ok, code := parseInterleaved(fs, rest)
		if !ok {
			return code
		}
		if len(pos) != 1 {
			return fail(env, "task run-now wants one task name")
		}
		var r sched.Run
		if err := c.Do(env.Ctx, "POST", "/api/v1/tasks/"+url.PathEscape(pos[0])+"/run", nil, &r); err != nil {
			return fail(env, "task run-now: %v", err)
		}
		if code := printRuns([]sched.Run{r}); code != 0 || r.Outcome == sched.OutcomeOK {
			return code
		}
		return 1
	case "put":
		var t sched.Task
		p := params{}
		fs.StringVar(&t.Kind, "kind", "", "what it does (switchyard task list shows the kinds in use; docs/tasks.md lists them)")
		fs.StringVar(&t.Schedule, "schedule", "", `cron expression ("30 23 * * *") or descriptor (@daily)`)
		fs.StringVar(&t.TimeZone, "timezone", "", "IANA zone of the schedule (default the switch's)")
		fs.StringVar(&t.Timeout, "timeout", "", "bound of one run (default 1h)")
		fs.BoolVar(&t.Disabled, "disabled", false, "defined but not run")
		fs.Var(p, "param", "a parameter key=value (repeatable)")
		reason := fs.String("reason", "", "why")
		pos, ok, code := parseInterleaved(fs, rest)
		if !ok {
			return code
		}
		if len(pos) != 1 {
			return fail(env, "task put wants one task name")
		}
		t.Name = pos[0]
		if len(p) > 0 {
			t.Params = p
		}
		var ch registry.Change
		if err := c.Do(env.Ctx, "PUT", "/api/v1/tasks/"+url.PathEscape(t.Name), sched.PutRequest{Task: t, Reason: *reason}, &ch); err != nil {
			return fail(env, "task put: %v", err)
		}
		if *asJSON {
			return printJSON(env, &ch)
		}
		fmt.Fprintf(env.Stdout, "%s requested (task.put %s): a different reviewer approves it with `switchyard change approve %s`\n", ch.ID, t.Name, ch.ID)
		return 0
	}
	fmt.Fprintf(env.Stderr, "switchyard: task: unknown subcommand %q\nUsage:\n%s\n", sub, taskUsage)
	return 2
}
