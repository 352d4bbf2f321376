package e2e

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/internal/racedetect"
)

// TestClusterBenchTiny runs `switchyard bench --cluster 3 --cluster-tls` for a few seconds and checks
// the harness itself: both phases ran, every node took load, and the report carries
// the CPU per authorization of each node, the profile's split and the ratio. It does
// not judge the figures: those are the bench's job (docs/cluster.md).
func TestClusterBenchTiny(t *testing.T) {
	t.Parallel() // see startCluster
	if testing.Short() || racedetect.Enabled {
		t.Skip("runs one switch, then three with embedded JetStream, for a few seconds each")
	}
	bin := switchyardBinary(t)
	dir := t.TempDir()
	// With --cluster-tls: the nodes' routes run mutual TLS (cluster.embedded.tls,
	// certificates made for the run), so the cluster forms only if that works.
	cmd := exec.Command(bin, "bench", "--cluster", "3", "--cluster-tls", "--rules", "../../rules", "--workdir", filepath.Join(dir, "work"),
		"--duration", "2s", "--warmup", "1s", "--terminals", "60", "--conns", "6")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("bench --cluster 3: %v\n%s%s", err, out.String(), nodeWarnings(filepath.Join(dir, "work", "cluster")))
	}
	for _, re := range []string{
		`authorizations/s +\d+ +\d+`,
		`latency p99 +[\d.]+ (ms|µs)`,
		// The split may name another package first (a sample or two of nats-server
		// code linked into the single node: "nats-server 0.7% (0.5 µs), switch ...").
		`(?m)^single +[1-9]\d* +\d+ +\d+ +[\d.]+ +[\d.]+ +[-\d.]+ +.*\bswitch \d`,
		`(?m)^node 1 +[1-9]\d* `, `(?m)^node 2 +[1-9]\d* `, `(?m)^node 3 +[1-9]\d* `,
		`cluster/single CPU per authorization: [\d.]+×`,
		`single node +cluster \(TLS\)`,
	} {
		if !regexp.MustCompile(re).MatchString(out.String()) {
			t.Errorf("output lacks %s:\n%s", re, out.String())
		}
	}
	for n := 1; n <= 3; n++ {
		b, err := os.ReadFile(filepath.Join(dir, "work", "cluster", fmt.Sprintf("node%d", n), "switch.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(b, []byte("    tls: {ca_file: ")) {
			t.Errorf("node %d's configuration has no cluster.embedded.tls:\n%s", n, b)
		}
	}
}

// nodeWarnings returns the warnings and errors in the bench's node logs under dir
// (the last 40 of each), for a failure's message: the directory goes with the test.
func nodeWarnings(dir string) string {
	var b strings.Builder
	for n := 1; n <= 3; n++ {
		data, err := os.ReadFile(filepath.Join(dir, fmt.Sprintf("node%d", n), "switch.log"))
		if err != nil {
			fmt.Fprintf(&b, "node %d: %v\n", n, err)
			continue
		}
		var lines []string
		for _, l := range strings.Split(string(data), "\n") {
			if strings.Contains(l, `"level":"warn"`) || strings.Contains(l, `"level":"error"`) || strings.Contains(l, `"level":"fatal"`) {
				lines = append(lines, l)
			}
		}
		fmt.Fprintf(&b, "node %d: %d warnings and errors, the last ones:\n", n, len(lines))
		for _, l := range lines[max(0, len(lines)-40):] {
			fmt.Fprintf(&b, "  %s\n", l)
		}
	}
	return b.String()
}
