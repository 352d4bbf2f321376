package cli

import (
	"strings"
	"testing"

	"github.com/switchyard/switchyard/switch/config"
)

// TestSetListenAddrs: --listen NAME=HOST:PORT moves the named listener; a bad form or an
// unknown name is refused with the listeners there are.
func TestSetListenAddrs(t *testing.T) {
	cfg := config.Demo()
	if err := setListenAddrs(cfg, []string{"ascii=127.0.0.1:0", "binary-bitmap=127.0.0.1:9999"}); err != nil {
		t.Fatal(err)
	}
	if cfg.Listeners[0].Addr != "127.0.0.1:0" || cfg.Listeners[1].Addr != "127.0.0.1:9999" {
		t.Errorf("listeners %+v", cfg.Listeners)
	}
	for in, want := range map[string]string{
		"ascii":             `want NAME=HOST:PORT`,
		"=127.0.0.1:1":      `want NAME=HOST:PORT`,
		"tls=127.0.0.1:443": `no listener named "tls" (the listeners: ascii, binary-bitmap, cup)`,
	} {
		if err := setListenAddrs(config.Demo(), []string{in}); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("--listen %s: %v, want %q", in, err, want)
		}
	}
}

// TestServeHelpNamesDemoListeners: serve -h names every listener of the demo that
// --listen can move, cup included (the help said "ascii, binary-bitmap", and the
// README moves all three).
func TestServeHelpNamesDemoListeners(t *testing.T) {
	code, out, errs := runCLI(t, nil, "serve", "-h")
	if code != 0 {
		t.Fatalf("serve -h: exit %d\n%s%s", code, out, errs)
	}
	names := []string{"cup"}
	for _, l := range config.Demo().Listeners {
		names = append(names, l.Name)
	}
	help := out + errs // -h writes the usage where the command line asked for it
	for _, n := range names {
		if !strings.Contains(help, "NAME ("+n) && !strings.Contains(help, ", "+n) {
			t.Errorf("serve -h does not name the demo listener %q:\n%s", n, help)
		}
	}
}
