package server

import (
	"errors"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/switchyard/switchyard/switch/issuersim"
)

// testDemoIssuer is the demo wiring of the tests: the demo issuer simulator.
var testDemoIssuer = WithDemoIssuer(func(addr string, log zerolog.Logger) (DemoIssuer, error) {
	d, err := issuersim.StartDemo(issuersim.Config{Addr: addr, Logger: log.With().Str("component", "issuer-sim").Logger()})
	if err != nil {
		return nil, err
	}
	return d, nil
})

// TestServerDoesNotImportIssuerSim: the production switch carries no issuer
// simulator; demo mode gets one injected (WithDemoIssuer), and without one it says
// how to start the demo instead of failing later.
func TestServerDoesNotImportIssuerSim(t *testing.T) {
	out, err := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	for _, p := range strings.Fields(string(out)) {
		if strings.HasSuffix(p, "/switch/issuersim") || strings.Contains(p, "/internal/cli") {
			t.Errorf("switch/server depends on %s", p)
		}
	}
	c := demoConfig(t, t.TempDir())
	if _, err := New(c, zerolog.Nop()); !errors.Is(err, errNoDemoIssuer) {
		t.Errorf("demo mode without a demo issuer: err %v, want %v", err, errNoDemoIssuer)
	}
}
