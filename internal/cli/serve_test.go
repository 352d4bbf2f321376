package cli

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

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

// TestDemoTryLine: the demo banner's example names the first listener term can
// reach: the ascii listener at term's default address (no --addr); past one that
// requires a PROXY header from this host (trusting loopback, bound to it or to
// every address), the next, with its dialect and address; a listener that
// requires the header from other proxies only, or is https or TLS, is not it / is
// skipped. With every listener term speaks to requiring the header, the line says
// so and sends term through the proxy; with none it speaks to, it says that.
func TestDemoTryLine(t *testing.T) {
	required := func(trusted ...string) *config.ProxyProtocol {
		return &config.ProxyProtocol{Trusted: trusted, Required: true}
	}
	ascii := config.Listener{Name: "ascii", Addr: "127.0.0.1:8583"}
	bitmap := config.Listener{Name: "binary-bitmap", Addr: "127.0.0.1:8584", Dialect: "ascii-binary-bitmap"}
	cup := config.Listener{Name: "cup", Addr: "127.0.0.1:9585", Dialect: "cup"}
	with := func(l config.Listener, edit func(*config.Listener)) config.Listener { edit(&l); return l }
	proxied := with(ascii, func(l *config.Listener) { l.ProxyProtocol = required("127.0.0.1") })
	const buy = "try: sy term purchase --pan 4761739001010119 --amount 1000"
	for _, tc := range []struct {
		name string
		ls   []config.Listener
		want string
	}{
		{"demo", config.Demo().Listeners, buy},
		{"ascii required", []config.Listener{proxied, bitmap, cup}, buy + " --dialect ascii-binary-bitmap"},
		{"ascii and bitmap required", []config.Listener{proxied, with(bitmap, func(l *config.Listener) { l.ProxyProtocol = required("127.0.0.0/8") }), cup},
			buy + " --pin 1234 --dialect cup --addr 127.0.0.1:9585"},
		{"required from other proxies", []config.Listener{with(ascii, func(l *config.Listener) { l.ProxyProtocol = required("10.0.8.0/24") }), bitmap}, buy},
		{"optional", []config.Listener{with(ascii, func(l *config.Listener) { l.ProxyProtocol = &config.ProxyProtocol{Trusted: []string{"127.0.0.1"}} })}, buy},
		{"all addresses", []config.Listener{with(proxied, func(l *config.Listener) { l.Addr = "0.0.0.0:8583" }), with(bitmap, func(l *config.Listener) { l.Addr = "0.0.0.0:8584" })},
			buy + " --dialect ascii-binary-bitmap --addr 0.0.0.0:8584"},
		{"https and tls skipped", []config.Listener{with(bitmap, func(l *config.Listener) { l.Kind = "https" }), with(cup, func(l *config.Listener) { l.TLS = &config.TLS{} }),
			with(ascii, func(l *config.Listener) { l.Addr = "127.0.0.1:7000" })}, buy + " --addr 127.0.0.1:7000"},
		{"every one required", []config.Listener{proxied, with(cup, func(l *config.Listener) { l.ProxyProtocol = required("127.0.0.1") })},
			"term: every terminal listener it speaks to (tcp without TLS) requires the PROXY protocol from this host (proxy_protocol.required), " +
				"and sy term sends no header: give its --addr the address of the proxy in front of one (docs/terminal-interface.md, Behind a load balancer)"},
		{"none term speaks to", []config.Listener{with(ascii, func(l *config.Listener) { l.Kind = "https" })},
			"term: no terminal listener it speaks to (sy term speaks tcp without TLS: no kind https, no tls)"},
	} {
		addrs := map[string]string{}
		for _, l := range tc.ls {
			addrs[l.Name] = l.Addr
		}
		got := tryLine("sy", tc.ls, func(n string) string { return addrs[n] })
		if got != tc.want {
			t.Errorf("%s: try line %q, want %q", tc.name, got, tc.want)
		}
	}
}

// TestDemoBannerTryReachesAListener: a demo switch whose ascii listener requires
// the PROXY protocol from loopback prints a try line that, run as printed, gets an
// answer (from the binary-bitmap listener). Before, the line sent term to the ascii
// listener, which closed its connection unanswered.
func TestDemoBannerTryReachesAListener(t *testing.T) {
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "switchyard.yaml")
	yaml := fmt.Sprintf(`demo: true
data_dir: %s
rules_dir: %s
admin: {addr: 127.0.0.1:0}
listeners:
  - {name: ascii, addr: 127.0.0.1:0, proxy_protocol: {trusted: [127.0.0.1], required: true}}
  - {name: binary-bitmap, addr: 127.0.0.1:0, dialect: ascii-binary-bitmap}
demo_issuer: {addr: 127.0.0.1:0}
security: {card_hash_key_hex: %s}
attestation: {apps: [com.switchyard.softpos]}
`, filepath.Join(dir, "data"), filepath.Join(dir, "rules"), config.DemoCardHashKey)
	if err := os.WriteFile(cfgFile, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	lines := make(chan string, 64)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	keep := func(k string) string { return map[string]string{"GOGC": "100", "GOMEMLIMIT": "off"}[k] }
	done := make(chan int, 1)
	go func() {
		done <- Main(&Env{Stdin: strings.NewReader(""), Stdout: io.Discard, Stderr: pw, Ctx: ctx, Getenv: keep}, []string{"serve", "--config", cfgFile})
		pw.Close()
	}()
	var try string
	deadline := time.After(60 * time.Second)
	for try == "" {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("serve ended before its banner's try line (exit %d)", <-done)
			}
			if _, after, found := strings.Cut(l, "try: "); found {
				try = after
			}
		case <-deadline:
			t.Fatal("no try line within 60 s")
		}
	}
	args := strings.Fields(try)
	if len(args) < 3 || args[0] != "switchyard" || args[1] != "term" {
		t.Fatalf("try line %q, want a term command", try)
	}
	code, out, errs := runCLI(t, nil, args[1:]...)
	if !strings.Contains(out+errs, "RC=") {
		t.Fatalf("%s: exit %d, no answer:\n%s%s", try, code, out, errs)
	}
	if !strings.Contains(try, "--dialect ascii-binary-bitmap --addr 127.0.0.1:") {
		t.Fatalf("try line %q, want term at the binary-bitmap listener", try)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("serve did not stop within 60 s of its context's end")
	}
}
