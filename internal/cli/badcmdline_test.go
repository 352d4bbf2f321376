package cli

import (
	"strings"
	"testing"
)

// TestBadCommandLinesExit2: a bad command line exits 2 with a message naming the
// flag, as the README's exit statuses say ("2 bad command line"); these exited 1,
// the --tid one after the packer's own error ("failed to pack field 41 ... should
// be fixed: 8"), the --admin one with the URL parser's ("first path segment in URL
// cannot contain colon"). None reaches a switch: nothing listens where they point.
func TestBadCommandLinesExit2(t *testing.T) {
	const nowhere = "127.0.0.1:1"
	purchase := []string{"term", "purchase", "--addr", nowhere, "--pan", "4761739001010119", "--amount", "1000"}
	with := func(a []string, more ...string) []string { return append(append([]string(nil), a...), more...) }
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"serve", "--config", "x.yaml", "--demo"}, "give --config or --demo, not both"},
		{[]string{"serve"}, "give --config FILE, or --demo"},
		{[]string{"serve", "--demo", "--data", t.TempDir(), "--listen", "ascii"}, `--listen "ascii": want NAME=HOST:PORT`},
		{[]string{"serve", "--demo", "--data", t.TempDir(), "--listen", "nosuch=127.0.0.1:0"}, `no listener named "nosuch"`},
		{[]string{"serve", "--demo", "--data", t.TempDir(), "--listen", "ascii=127.0.0.1:0", "--listen", "ascii=127.0.0.1:1"}, "listener ascii is given twice"},
		{[]string{"term", "purchase", "--addr", nowhere, "--amount", "1000"}, "--pan is required"},
		{with(purchase, "--amount", "abc"), "--amount abc"},
		{with(purchase, "--amount", "-5"), "negative"},
		{with(purchase, "--amount", "10.001"), "--amount 10.001"},
		{with(purchase, "--dialect", "xx"), "--dialect"},
		{with(purchase, "--resend", "123"), "--resend"},
		{[]string{"term", "reversal", "--addr", nowhere, "--original", "12"}, `--original "12"`},
		{with(purchase, "--tid", "T00000001"), `--tid "T00000001": want 8 characters`},
		{with(purchase, "--mid", "M1"), `--mid "M1": want 15 characters`},
		{with(purchase, "--dialect", "cup", "--tid", "T001"), `--tid "T001": want 8 characters`},
		{[]string{"issuer-sim", "--addr", "127.0.0.1:0", "--latency", "-1s"}, "--latency -1s is negative"},
		{[]string{"journal", "--admin", "127.0.0.1:23080"}, `--admin "127.0.0.1:23080" (or $SWITCHYARD_ADMIN): want an http or https URL with a host, such as http://127.0.0.1:23080`},
	} {
		code, _, errs := runCLI(t, nil, tc.args...)
		if code != 2 || !strings.Contains(errs, tc.want) {
			t.Errorf("%s: exit %d, want 2 and %q:\n%s", strings.Join(tc.args, " "), code, tc.want, errs)
		}
	}
}
