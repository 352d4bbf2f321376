package config

// Console configures the web console the admin server serves under /console/
// (switch/console, docs/console.md). Zero values take the defaults.
type Console struct {
	// Disabled leaves the console out (the admin API is served either way).
	Disabled bool `yaml:"disabled"`
	// IdleTimeout ends a session after this long without a request (default 15m).
	IdleTimeout Duration `yaml:"idle_timeout"`
	// SessionLifetime ends a session this long after its login, however busy
	// (default 12h).
	SessionLifetime Duration `yaml:"session_lifetime"`
	// MaxFailures failed logins in a row lock the user name for Lockout
	// (defaults 5 and 15m).
	MaxFailures int      `yaml:"max_failures"`
	Lockout     Duration `yaml:"lockout"`
	// AddrMaxFailures failed logins from one client address within AddrWindow,
	// whatever the names, block the address's logins for AddrWindow (defaults
	// 20 and 10m). The address is the TCP peer's, or behind a reverse proxy listed
	// in admin.trusted_proxies the client's from X-Forwarded-For (admin.ClientAddr);
	// behind one not listed, the proxy's.
	AddrMaxFailures int      `yaml:"addr_max_failures"`
	AddrWindow      Duration `yaml:"addr_window"`
	// SecureCookie marks the session cookie Secure: set it when the admin address
	// is reached through a TLS proxy (the admin server itself speaks plain HTTP).
	SecureCookie bool `yaml:"secure_cookie"`
}

func (c Console) validate(bad func(key, format string, args ...any)) {
	for _, d := range []struct {
		key string
		d   Duration
	}{{"idle_timeout", c.IdleTimeout}, {"session_lifetime", c.SessionLifetime}, {"lockout", c.Lockout}, {"addr_window", c.AddrWindow}} {
		if d.d < 0 {
			bad("admin.console."+d.key, "%s is negative", d.d.D())
		}
	}
	if c.MaxFailures < 0 {
		bad("admin.console.max_failures", "%d is negative", c.MaxFailures)
	}
	if c.AddrMaxFailures < 0 {
		bad("admin.console.addr_max_failures", "%d is negative", c.AddrMaxFailures)
	}
}
