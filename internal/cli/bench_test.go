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
		{[]string{"--duration", "19h"}, "--duration 19h0m0s: at most 18h12m15s"},
		{[]string{"--cluster", "3", "--duration", "100h"}, "--duration 100h0m0s: at most 18h12m15s"},
		{[]string{"--curve", "100:200:100", "--curve-step", "1000h"}, "--curve-step 1000h0m0s: at most 18h12m15s"},
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
		{[]string{"--conns", "1200"}, "--conns 1200: at most 990"},
		{[]string{"--cluster", "3", "--conns", "5000"}, "--conns 5000: at most 990"},
		{[]string{"--plain", "--terminals", "10", "--conns", "64"}, "--conns 64 above --terminals 10"},
		{[]string{"--target", "127.0.0.1:9", "--terminals", "10"}, "--conns 64 above --terminals 10"},
		{[]string{"--depth", "0"}, "--depth 0: want 1 to 65535"},
		{[]string{"--depth", "1000000000"}, "--depth 1000000000: want 1 to 65535"},
		{[]string{"--cards", "-1"}, "--cards -1"},
		{[]string{"--cup-terminals", "2000"}, "--cup-terminals 2000"},
		{[]string{"--cup-terminals", "1500"}, "--cup-terminals 1500: at most 990"},
		{[]string{"--faults", "--duration", "0s"}, "--duration does not apply to bench --faults"},
		{[]string{"--faults", "--terminals", "0"}, "--terminals 0: want 1 to 999999"},
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

// TestBenchFlagsIgnored: a flag the chosen bench does not take, a --results it would
// not write, a flag without the one it goes with, or a value the fault bench used to
// replace with its default (a zero or negative duration or rate), is a usage error said
// before anything starts, not a run that quietly did something else.
func TestBenchFlagsIgnored(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--cluster", "1"}, "--cluster 1: a cluster of R3 streams needs 3 to 5 nodes"},
		{[]string{"--cluster", "2"}, "--cluster 2: a cluster of R3 streams needs 3 to 5 nodes"},
		{[]string{"--cluster", "7"}, "--cluster 7: a cluster of R3 streams needs 3 to 5 nodes"},
		{[]string{"--cluster", "-1"}, "--cluster -1: a cluster of R3 streams needs 3 to 5 nodes"},
		{[]string{"--outage", "10s"}, "--outage does not apply to the bench"},
		{[]string{"--fault-rate", "50"}, "--fault-rate does not apply to the bench"},
		{[]string{"--profile=false"}, "--profile does not apply to the bench"},
		{[]string{"--faults", "--rate", "100"}, "--rate does not apply to bench --faults"},
		{[]string{"--faults", "--curve", "100:200:100"}, "--curve does not apply to bench --faults"},
		{[]string{"--faults", "--duration", "5s"}, "--duration does not apply to bench --faults"},
		{[]string{"--cluster", "3", "--cards", "1000"}, "--cards does not apply to bench --cluster"},
		{[]string{"--cluster", "3", "--faults"}, "--faults does not apply to bench --cluster"},
		{[]string{"--cluster", "3", "--results", "out"}, "--results out: bench --cluster writes no report files"},
		{[]string{"--target", "127.0.0.1:9", "--plain"}, "--plain does not apply to bench --target"},
		{[]string{"--target", "127.0.0.1:9", "--cpuprofile", "x"}, "--cpuprofile does not apply to bench --target"},
		{[]string{"--target", "127.0.0.1:9", "--results", "out"}, "--results out: bench --target writes no report files"},
		{[]string{"--relay-journal-window", "2ms"}, "--relay-journal-window goes with --relay-journal"},
		{[]string{"--plain", "--qr-share", "0.1", "--terminals", "100", "--conns", "10"}, "--qr-share does not go with --plain"},
		{[]string{"--qr-share", "NaN"}, "--qr-share NaN: want a share from 0 to 1"},
		{[]string{"--curve-step", "5s"}, "--curve-step goes with --curve"},
		{[]string{"--rate", "0", "--fresh"}, "--fresh and --settle-timeout go with an open loop"},
		{[]string{"--relay-burn", "-1us"}, "--relay-burn -1µs: want 0 or more"},
		{[]string{"--journal-window", "-5ms"}, "--journal-window -5ms: want 0 or more"},
		{[]string{"--journal-window-cpu", "-0.5"}, "--journal-window-cpu -0.5 is not a share"},
		{[]string{"--issuer-latency", "-1ms"}, "--issuer-latency -1ms"},
		{[]string{"--rate", "0.001"}, "--rate 0.001: want 0 (no open loop) or at least 1"},
		{[]string{"--cluster", "3", "--rate", "1e-300"}, "--rate 1e-300: want 0 (no open loop) or at least 1"},
		{[]string{"--faults", "--outage", "-5s"}, "--outage -5s: want above zero"},
		{[]string{"--faults", "--before", "0s"}, "--before 0s: want above zero"},
		{[]string{"--faults", "--settle", "-1s"}, "--settle -1s: want above zero"},
		{[]string{"--faults", "--fault-rate", "0"}, "--fault-rate 0: want above 0"},
		{[]string{"--faults", "--fault-rate", "-10"}, "--fault-rate -10: want above 0"},
		{[]string{"--faults", "--fault-rate", "NaN"}, "--fault-rate NaN: want above 0"},
		{[]string{"--faults", "--drop", "NaN"}, "--drop NaN, --late 0.05: want shares"},
	} {
		var out, errb bytes.Buffer
		code := Main(&Env{Stdout: &out, Stderr: &errb}, append([]string{"bench", "--results", ""}, c.args...))
		if code != 2 || !strings.Contains(errb.String(), c.want) {
			t.Errorf("bench %v: exit %d, %q; want exit 2 and %q", c.args, code, errb.String(), c.want)
		}
	}
}
