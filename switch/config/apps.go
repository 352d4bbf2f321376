package config

import (
	"fmt"

	"github.com/switchyard/switchyard/switch/sched"
)

// Apps configures the terminal application management (docs/apps.md).
type Apps struct {
	// MaxPackageBytes bounds an uploaded package (default 512 MiB): bytes, or a
	// size with its unit (512MiB, Size).
	MaxPackageBytes Size `yaml:"max_package_bytes"`
	// TokenTTL is how long the download token of an update offer is valid
	// (default 24h): a terminal that has not finished by then signs on again.
	TokenTTL Duration `yaml:"token_ttl"`
	// RefreshInterval is how often the rollout groups are resolved again against the
	// registry, so that new terminals get their group's offer (default 30s).
	RefreshInterval Duration `yaml:"refresh_interval"`
}

// Task is a scheduled task of the configuration (docs/tasks.md).
type Task struct {
	// Name identifies the task (in `switchyard task`, in the run history).
	Name string `yaml:"name"`
	// Kind is what it does: profiles.refresh, offline.check, settlement.file,
	// keys.zone-change, keys.rotate, apps.refresh.
	Kind string `yaml:"kind"`
	// Schedule is a cron expression (minute hour day-of-month month day-of-week) or a
	// descriptor (@daily, @hourly, @every 1h).
	Schedule string `yaml:"schedule"`
	// Timezone is the IANA zone the schedule is read in (default: timezone).
	Timezone string `yaml:"timezone"`
	// Params are the kind's parameters (issuer for keys.zone-change, keys for
	// keys.rotate, dir for settlement.file).
	Params map[string]string `yaml:"params"`
	// Timeout bounds one run (default 1h).
	Timeout Duration `yaml:"timeout"`
	// Disabled keeps the task defined but not run.
	Disabled bool `yaml:"disabled"`
}

// validateAppsTasks checks apps: and tasks: (the kinds are checked at start, where
// they are registered).
func (c *Config) validateAppsTasks(bad func(key, format string, args ...any)) {
	if c.Apps.MaxPackageBytes < 0 {
		bad("apps.max_package_bytes", "%d is negative", int64(c.Apps.MaxPackageBytes))
	}
	if c.Apps.TokenTTL < 0 {
		bad("apps.token_ttl", "%s is negative", c.Apps.TokenTTL.D())
	}
	if c.Apps.RefreshInterval < 0 {
		bad("apps.refresh_interval", "%s is negative", c.Apps.RefreshInterval.D())
	}
	names := map[string]bool{}
	for i, t := range c.Tasks {
		key := fmt.Sprintf("tasks[%d]", i)
		if t.Name == "" {
			bad(key+".name", "required")
		} else if names[t.Name] {
			bad(key+".name", "%q given twice", t.Name)
		}
		names[t.Name] = true
		if t.Kind == "" {
			bad(key+".kind", "required")
		}
		if _, _, err := sched.ParseSchedule(t.Schedule, t.Timezone, nil); err != nil {
			bad(key, "%v", err)
		}
		if t.Timeout < 0 {
			bad(key+".timeout", "must not be negative")
		}
	}
}
