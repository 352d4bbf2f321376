package cli

import (
	"crypto/x509"
	"errors"
	"fmt"
	"os"

	"github.com/switchyard/switchyard/internal/boundfile"
	"github.com/switchyard/switchyard/internal/cli/kit"
	"github.com/switchyard/switchyard/keys"
	"github.com/switchyard/switchyard/risk"
	"github.com/switchyard/switchyard/switch/config"
	"github.com/switchyard/switchyard/switch/server"
)

const configUsage = `Usage: switchyard config check --config FILE

Checks a configuration file as serve would at start, without starting anything: every
key is known and valid (errors name each key by its path, its value and what is
allowed), and the files and variables it names can be read: the rules directory
(outside demo mode it must exist: no fallback to the built-in rule pack), the LMK, the
card hash key (its block opened under the LMK), the alert webhook secrets, the QR notification secret, the listeners'
and the HSMs' TLS certificates and keys. Prints "ok" and exits 0, or lists every
problem and exits 1: first every key's, then, once the keys are valid, every file's and
variable's (a second run may find more). Run it before a restart or a SIGHUP (which keeps the running configuration
when the new one is refused).
`

func init() {
	registerTool("config", "check a configuration file as serve would, without starting", configUsage, []string{"check"}, runConfig)
}

func runConfig(env *Env, args []string) int {
	if len(args) == 0 || args[0] != "check" {
		if len(args) > 0 {
			fmt.Fprintf(env.Stderr, "switchyard: config: unknown subcommand %q (want check: switchyard config check --config FILE)\n\n", args[0])
		}
		fmt.Fprint(env.Stderr, configUsage)
		return kit.ExitUsage
	}
	fs := newFlags(env, "config check", "--config FILE")
	file := fs.String("config", "", "configuration file (YAML)")
	if ok, code := parseFlagsOnly(env, fs, args[1:]); !ok {
		return code
	}
	if *file == "" {
		fmt.Fprint(env.Stderr, configUsage)
		return kit.ExitUsage
	}
	c, err := config.Load(*file)
	if err != nil {
		return fail(env, "%v", err)
	}
	if err := checkConfigFiles(env, c); err != nil {
		return fail(env, "config %s: %v", *file, err)
	}
	fmt.Fprintf(env.Stdout, "config %s: ok (%s, %s, %s)\n", *file,
		countOf(len(c.Listeners), "listener"), countOf(len(c.Issuers), "issuer"), countOf(len(c.Routes), "issuer route"))
	return kit.ExitOK
}

// checkConfigFiles reads what c names outside itself, as the start does: the
// secrets (wiped once checked; a card hash key block is opened under the LMK with
// the start's own server.OpenCardHashKeyBlock) and the TLS files; every problem is
// reported.
func checkConfigFiles(env *Env, c *config.Config) error {
	var errs []error
	if err := server.CheckTasks(c); err != nil {
		errs = append(errs, err)
	}
	if err := c.CheckRulesDir(); err != nil {
		errs = append(errs, err)
	} else if err := checkRulesNotEmpty(c); err != nil {
		errs = append(errs, err)
	}
	var lmk []byte
	lmkOK := true
	if !c.HSM.IsPayShield() {
		var err error
		if lmk, err = keys.LoadLMK(keys.LMKSource{File: c.Security.LMKFile, Env: c.Security.LMKEnv, Demo: c.Demo}); err != nil {
			errs = append(errs, fmt.Errorf("security.lmk_file/lmk_env: %w", err))
			lmkOK = false
		}
		defer clear(lmk)
	}
	if c.Security.CardHashKeyBlock == "" {
		k, err := c.CardHashKey()
		if err != nil {
			errs = append(errs, err)
		}
		clear(k)
	} else if lmkOK { // without the LMK there is nothing to open the block under: its error says so
		// Opened as the start opens it: a block made under another LMK, or damaged
		// (a MAC digit, a header byte), passed the check before the fifteenth
		// release and stopped the start.
		k, err := server.OpenCardHashKeyBlock(c, lmk)
		if err != nil {
			errs = append(errs, err)
		}
		clear(k)
	}
	if _, err := c.WebhookSecret(); err != nil {
		errs = append(errs, err)
	}
	if _, err := c.WebhookSecretPrevious(); err != nil {
		errs = append(errs, err)
	}
	if _, err := c.QR.NotifySecret(c.Demo, env.Getenv); err != nil {
		errs = append(errs, err)
	}
	for i, l := range c.Listeners {
		if l.TLS != nil {
			if err := checkTLSFiles(l.TLS.CertFile, l.TLS.KeyFile, l.TLS.ClientCAFile, "client_ca_file"); err != nil {
				errs = append(errs, fmt.Errorf("listeners[%d].tls: %w", i, err))
			}
		}
	}
	if c.HSM.TLS {
		if err := checkTLSFiles(c.HSM.CertFile, c.HSM.KeyFile, c.HSM.CAFile, "ca_file"); err != nil {
			errs = append(errs, fmt.Errorf("hsm: %w", err))
		}
	}
	if c.Cluster != nil {
		if err := c.Cluster.CheckFiles(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// checkRulesNotEmpty reports a rules_dir whose rules load but hold no rule, which
// the switch refuses at start unless risk.allow_empty_rules is true. Problems in the
// rules themselves are `rules check`'s (the switch reports them at start too); a
// demo rules_dir that does not exist is the built-in pack.
func checkRulesNotEmpty(c *config.Config) error {
	if c.Risk.AllowEmptyRules {
		return nil
	}
	if _, err := os.Stat(c.RulesDir); err != nil {
		return nil
	}
	rs, err := risk.Load(c.RulesDir, risk.LoadOptions{})
	if err != nil {
		return nil
	}
	if err := rs.EmptyError(); err != nil {
		return fmt.Errorf("rules_dir: %w: the switch would not start (set risk.allow_empty_rules: true if a switch without risk rules is meant)", err)
	}
	return nil
}

// checkTLSFiles loads a certificate and its key (when cert is set) and a CA file
// (when ca is set; caKey is its key, for errors), each within
// boundfile.MaxPEMBytes, as the start does.
func checkTLSFiles(cert, key, ca, caKey string) error {
	if cert != "" {
		if _, err := boundfile.KeyPair(cert, key); err != nil {
			return fmt.Errorf("cert_file %s, key_file %s: %w", cert, key, err)
		}
	}
	if ca != "" {
		pem, err := boundfile.Read(ca, boundfile.MaxPEMBytes)
		if err != nil {
			return fmt.Errorf("%s: %w", caKey, err)
		}
		if !x509.NewCertPool().AppendCertsFromPEM(pem) {
			return fmt.Errorf("%s %s: no PEM certificate in it", caKey, ca)
		}
	}
	return nil
}

// countOf says n things: "1 listener", "2 listeners".
func countOf(n int, thing string) string {
	if n == 1 {
		return "1 " + thing
	}
	return fmt.Sprintf("%d %ss", n, thing)
}
