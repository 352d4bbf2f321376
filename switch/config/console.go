package config

// Console configures the web console the admin server serves under /console/
// (switch/console, docs/console.md). Zero values take the defaults.
type Console struct {
	// Disabled leaves the console out (the admin API is served either way).
	Disabled bool `yaml:"disabled"`
	// IdleTimeout ends a session after this long without a request (default 15m).
	IdleTimeout Duration `yaml:"idle_timeout"`
	// MaxFailures failed logins in a row lock the user name for Lockout
	// (defaults 5 and 15m).
	MaxFailures int      `yaml:"max_failures"`
	Lockout     Duration `yaml:"lockout"`
	// SecureCookie marks the session cookie Secure: set it when the admin address
	// is reached through a TLS proxy (the admin server itself speaks plain HTTP).
	SecureCookie bool `yaml:"secure_cookie"`
}

func (c Console) validate(bad func(key, format string, args ...any)) {
	if c.IdleTimeout < 0 || c.Lockout < 0 || c.MaxFailures < 0 {
		bad("admin.console", "idle_timeout, max_failures and lockout must not be negative")
	}
}
