package config

import (
	"strings"
	"testing"
)

// TestTasksConfig: a task's schedule and zone are checked at start, the error naming
// the task's key path.
func TestTasksConfig(t *testing.T) {
	base := "demo: true\nlisteners: [{addr: 127.0.0.1:1}]\nsecurity: {card_hash_key_hex: " + DemoCardHashKey + "}\n"
	c, err := Parse([]byte(base+"tasks: [{name: s, kind: settlement.file, schedule: '15 0 * * *', timezone: Europe/Paris}]\n"), "a.yaml")
	if err != nil || len(c.Tasks) != 1 || c.Tasks[0].Timezone != "Europe/Paris" {
		t.Fatalf("good task: %+v %v", c.Tasks, err)
	}
	for _, tc := range []struct{ yaml, want string }{
		{"tasks: [{name: s, kind: k, schedule: '99 0 * * *'}]", "tasks[0]: schedule"},
		{"tasks: [{name: s, kind: k, schedule: '@daily', timezone: Nowhere/City}]", "tasks[0]: timezone"},
		{"tasks: [{name: s, kind: k, schedule: '@daily'}, {name: s, kind: k, schedule: '@daily'}]", "tasks[1].name"},
		{"tasks: [{name: s, schedule: '@daily'}]", "tasks[0].kind"},
		{"apps: {token_ttl: -1s}", "apps"},
	} {
		if _, err := Parse([]byte(base+tc.yaml+"\n"), "b.yaml"); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error naming %s", tc.yaml, err, tc.want)
		}
	}
}
