//go:build unix

package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/internal/boundfile/boundfiletest"
	"github.com/switchyard/switchyard/switch/config"
)

// TestConfigCheckFilesBounded: every file config check reads beside the
// configuration (as the start does) is read within a bound: an LMK file, a TLS
// certificate, key or CA file (a listener's, the payShield link's, the cluster's)
// or a cluster credential that is /dev/zero, a FIFO or too large is refused at
// once with its key and its path. /dev/zero was read until the memory ran out, a
// FIFO hung the check waiting for a writer, and a huge LMK file was read whole.
func TestConfigCheckFilesBounded(t *testing.T) {
	files := boundfiletest.New(t)
	dir, fifo, bigLMK := files.Dir, files.FIFO, files.BigLMK
	caFile, cert, key := files.Cert(t, "n1")
	const base = "demo: true\nsecurity: {card_hash_key_hex: " + config.DemoCardHashKey + "}\n"
	listener := "listeners: [{addr: 127.0.0.1:0}]\n"
	tlsListener := func(cert, key, ca string) string {
		return "listeners: [{addr: 127.0.0.1:0, tls: {cert_file: " + cert + ", key_file: " + key + ", client_ca_file: " + ca + "}}]\n"
	}
	cluster := func(c string) string {
		return "data_dir: " + filepath.Join(dir, "data") + "\ncluster: " + c + "\n"
	}
	external := func(x string) string {
		return cluster("{mode: external, node: 1, external: {urls: [nats://127.0.0.1:4222], " + x + "}}")
	}
	for _, tc := range []struct{ name, body, want string }{
		{"LMK too big", "demo: true\n" + listener + "security: {lmk_file: " + bigLMK + ", card_hash_key_hex: " + config.DemoCardHashKey + "}\n",
			"security.lmk_file/lmk_env: LMK file: " + bigLMK + " is 65600 bytes, more than the 65536 bytes allowed"},
		{"listener cert dev zero", base + tlsListener("/dev/zero", key, caFile),
			"listeners[0].tls: cert_file /dev/zero, key_file " + key + ": /dev/zero is not a regular file but a device"},
		{"listener key FIFO", base + tlsListener(cert, fifo, caFile),
			"listeners[0].tls: cert_file " + cert + ", key_file " + fifo + ": " + fifo + " is not a regular file but a named pipe (FIFO)"},
		{"listener client CA FIFO", base + tlsListener(cert, key, fifo),
			"listeners[0].tls: client_ca_file: " + fifo + " is not a regular file but a named pipe (FIFO)"},
		{"payShield CA FIFO", base + listener + "hsm: {backend: payshield, addrs: [127.0.0.1:1500], tls: true, ca_file: " + fifo + "}\n",
			"hsm: ca_file: " + fifo + " is not a regular file but a named pipe (FIFO)"},
		{"payShield cert dev zero", base + listener + "hsm: {backend: payshield, addrs: [127.0.0.1:1500], tls: true, cert_file: /dev/zero, key_file: " + key + "}\n",
			"hsm: cert_file /dev/zero, key_file " + key + ": /dev/zero is not a regular file but a device"},
		{"cluster CA FIFO", base + listener + cluster("{mode: embedded, node: 1, embedded: {server_name: n1, tls: {ca_file: "+fifo+", cert_file: "+cert+", key_file: "+key+"}}}"),
			"cluster.embedded.tls.ca_file: " + fifo + " is not a regular file but a named pipe (FIFO)"},
		{"cluster cert dev zero", base + listener + cluster("{mode: embedded, node: 1, embedded: {server_name: n1, tls: {ca_file: "+caFile+", cert_file: /dev/zero, key_file: "+key+"}}}"),
			"cluster.embedded.tls.cert_file: /dev/zero is not a regular file but a device"},
		{"external CA FIFO", base + listener + external("tls_ca_file: "+fifo),
			"cluster.external.tls_ca_file: " + fifo + " is not a regular file but a named pipe (FIFO)"},
		{"external cert dev zero", base + listener + external("tls_cert_file: /dev/zero, tls_key_file: "+key),
			"cluster.external.tls_cert_file and tls_key_file (/dev/zero, " + key + "): /dev/zero is not a regular file but a device"},
		{"external credentials FIFO", base + listener + external("credentials_file: "+fifo),
			"cluster.external.credentials_file: " + fifo + " is not a regular file but a named pipe (FIFO)"},
	} {
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "c.yaml")
			if err := os.WriteFile(p, []byte(tc.body), 0o600); err != nil || os.Chmod(p, 0o600) != nil {
				t.Fatal(err)
			}
			type result struct {
				code      int
				out, errs string
			}
			var r result
			_ = files.Within(t, func() error {
				r.code, r.out, r.errs = runCLI(t, nil, "config", "check", "--config", p)
				return nil
			})
			if r.code != 1 || r.out != "" || !strings.Contains(r.errs, tc.want) {
				t.Errorf("exit %d, stdout %q, stderr %q; want exit 1 and %q", r.code, r.out, r.errs, tc.want)
			}
		})
	}
}
