package cli

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/switch/sched"
)

// TestTaskTablesEscapeControls: a task's error (a webhook host's answer quoted in
// it) and a run's output carrying an escape sequence print as visible escapes,
// one row each, in task list and task history. Before, both tables wrote the
// bytes, and the operator's terminal acted on them (OSC 52 writes the clipboard).
func TestTaskTablesEscapeControls(t *testing.T) {
	start := time.Date(2026, 1, 2, 3, 0, 0, 0, time.UTC)
	api := newFakeAdmin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Path == "/api/v1/tasks" {
			_ = json.NewEncoder(w).Encode([]sched.View{{Task: sched.Task{Name: "push", Kind: "notify", Schedule: "@daily"},
				Error: "host said 500 x\x1b]52;c;eA==\a"}})
			return
		}
		_ = json.NewEncoder(w).Encode([]sched.Run{{Task: "push", Start: start, End: start.Add(time.Second), Outcome: "failed",
			Error: "bad\x1b[2J\nanswer"}})
	})
	vars := map[string]string{"SWITCHYARD_ADMIN": api.URL, "SWITCHYARD_TOKEN": "t"}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"task", "list"}, `error: host said 500 x\x1b]52;c;eA==\x07`},
		{[]string{"task", "history"}, `bad\x1b[2J answer`},
	} {
		code, out, errs := runCLI(t, vars, c.args...)
		if code != 0 {
			t.Fatalf("%v: exit %d\nstdout: %s\nstderr: %s", c.args, code, out, errs)
		}
		if strings.ContainsAny(out, "\x1b\a") || !strings.Contains(out, c.want) || strings.Count(out, "\n") != 2 {
			t.Errorf("%v table:\n%q", c.args, out)
		}
	}
}
