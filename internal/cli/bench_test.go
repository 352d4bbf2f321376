package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBenchBadFlags: values the bench used to replace with its defaults without a
// word, or that make no load, are usage errors, said before anything starts.
func TestBenchBadFlags(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--duration", "0s"}, "--duration 0s: want above zero"},
		{[]string{"--duration", "-5s"}, "--duration -5s: want above zero"},
		{[]string{"--warmup", "-1s"}, "--warmup -1s: want above zero"},
		{[]string{"--warmup", "0s"}, "--warmup 0s: want above zero"},
		{[]string{"--relay-duration", "-1s"}, "--relay-duration -1s"},
		{[]string{"--rate", "-100"}, "--rate -100: want 0"},
		{[]string{"--rate", "NaN"}, "--rate NaN: want 0"},
		{[]string{"--rate", "+Inf"}, "--rate +Inf: want 0"},
		{[]string{"--terminals", "0"}, "--terminals 0: want 1 to 999999"},
		{[]string{"--terminals", "-3"}, "--terminals -3: want 1 to 999999"},
		{[]string{"--terminals", "5000000"}, "--terminals 5000000: want 1 to 999999"},
		{[]string{"--conns", "0"}, "--conns 0: want at least 1"},
		{[]string{"--plain", "--terminals", "10", "--conns", "64"}, "--conns 64 above --terminals 10"},
		{[]string{"--target", "127.0.0.1:9", "--terminals", "10"}, "--conns 64 above --terminals 10"},
		{[]string{"--depth", "0"}, "--depth 0: want 1 to 65535"},
		{[]string{"--depth", "1000000000"}, "--depth 1000000000: want 1 to 65535"},
		{[]string{"--cards", "-1"}, "--cards -1"},
		{[]string{"--cup-terminals", "2000"}, "--cup-terminals 2000"},
		{[]string{"--faults", "--duration", "0s"}, "--duration 0s: want above zero"},
		{[]string{"--cluster", "3", "--terminals", "0"}, "--terminals 0: want 1 to 999999"},
	} {
		var out, errb bytes.Buffer
		code := Main(&Env{Stdout: &out, Stderr: &errb}, append([]string{"bench", "--results", ""}, c.args...))
		if code != 2 || !strings.Contains(errb.String(), c.want) {
			t.Errorf("bench %v: exit %d, %q; want exit 2 and %q", c.args, code, errb.String(), c.want)
		}
	}
}

// TestBenchResultsUnwritable: a --results path that cannot be written fails the
// bench before the run, not after it (its figures lost).
func TestBenchResultsUnwritable(t *testing.T) {
	file := filepath.Join(t.TempDir(), "a-file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, extra := range [][]string{nil, {"--faults"}} {
		var out, errb bytes.Buffer
		args := append([]string{"bench", "--results", filepath.Join(file, "results"), "--rules", "../../rules"}, extra...)
		code := Main(&Env{Stdout: &out, Stderr: &errb}, args)
		if code != 1 || !strings.Contains(errb.String(), "bench: --results: ") || strings.Count(errb.String(), "\n") != 1 {
			t.Errorf("bench %v: exit %d, %q; want exit 1 and a --results error before anything starts", extra, code, errb.String())
		}
	}
}
