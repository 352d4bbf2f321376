package cli

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/internal/devpki"
	"github.com/switchyard/switchyard/keys"
	"github.com/switchyard/switchyard/switch/config"
)

// TestConfigCheck: `switchyard config check` says ok for a valid file and exits 0,
// and otherwise exits 1 naming every problem: a key the configuration refuses (by
// its path) and, past validation, the files the start would fail to read (an LMK
// readable by others, a missing card hash key file, a missing TLS certificate, a
// rules_dir that does not exist outside demo mode).
func TestConfigCheck(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		// Chmod too: a serve test before this one may have set the process's umask.
		if err := os.WriteFile(p, []byte(body), mode); err != nil || os.Chmod(p, mode) != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good.yaml", "demo: true\nlisteners: [{addr: 127.0.0.1:0}]\nsecurity: {card_hash_key_hex: "+config.DemoCardHashKey+"}\n", 0o600)
	code, out, errs := runCLI(t, nil, "config", "check", "--config", good)
	if code != 0 || !strings.Contains(out, "ok (1 listener, 0 issuers, 1 issuer route)") {
		t.Fatalf("valid file: exit %d, stdout %q, stderr %q", code, out, errs)
	}

	// A task's kind and params are checked as the start checks them.
	tasks := write("tasks.yaml", "demo: true\nlisteners: [{addr: 127.0.0.1:0}]\nsecurity: {card_hash_key_hex: "+config.DemoCardHashKey+"}\n"+
		"tasks:\n  - {name: s, kind: settlement.file, schedule: '15 0 * * *', params: {dirr: /srv}}\n"+
		"  - {name: r, kind: journal.retention, schedule: '@daily', params: {days: '400'}}\n"+
		"  - {name: x, kind: settlement.fil, schedule: '@daily'}\n", 0o600)
	code, out, errs = runCLI(t, nil, "config", "check", "--config", tasks)
	if code != 1 || out != "" || !strings.Contains(errs, `tasks[0]: task s (settlement.file): parameter "dirr": this kind takes date, dir`) ||
		!strings.Contains(errs, `tasks[2].kind "settlement.fil": want one of`) || strings.Contains(errs, "tasks[1]") {
		t.Fatalf("bad tasks: exit %d, stdout %q, stderr %q", code, out, errs)
	}

	typo := write("typo.yaml", "demo: true\nlisteners: [{addr: 127.0.0.1:0, idle_tmeout: 5m}]\n", 0o600)
	code, out, errs = runCLI(t, nil, "config", "check", "--config", typo)
	if code != 1 || out != "" || !strings.Contains(errs, "listeners[0].idle_tmeout: unknown key (line 2): did you mean idle_timeout?") {
		t.Fatalf("typo: exit %d, stdout %q, stderr %q", code, out, errs)
	}

	lmk := write("lmk.hex", strings.Repeat("a1", 32), 0o644) // readable by others
	files := write("files.yaml", "listeners: [{addr: 127.0.0.1:0, tls: {cert_file: "+filepath.Join(dir, "none.crt")+", key_file: "+filepath.Join(dir, "none.key")+"}}]\n"+
		"security: {lmk_file: "+lmk+", card_hash_key_file: "+filepath.Join(dir, "missing.hex")+"}\n", 0o600)
	code, out, errs = runCLI(t, nil, "config", "check", "--config", files)
	if code != 1 || out != "" {
		t.Fatalf("unreadable files: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	for _, want := range []string{"security.lmk_file/lmk_env:", "security.card_hash_key_file:", "listeners[0].tls: cert_file " + filepath.Join(dir, "none.crt")} {
		if !strings.Contains(errs, want) {
			t.Errorf("unreadable files: stderr %q does not name %q", errs, want)
		}
	}

	// Outside demo mode a rules_dir that does not exist is refused (the switch would
	// not start); a demo file keeps the fallback to the built-in pack.
	lmkOK := write("lmk-ok.hex", "B25E0C9173D4A86F21E7C3905BDA4F18C6732E9D05A8B1F4672C3DE98A10F5B6", 0o600) // random: a pattern is refused (keys.WeakLMK)
	rulez := filepath.Join(dir, "rulez")
	prod := write("prod.yaml", "rules_dir: "+rulez+"\nlisteners: [{addr: 127.0.0.1:0}]\n"+
		"security: {lmk_file: "+lmkOK+", card_hash_key_hex: "+strings.Repeat("c3", 32)+"}\n", 0o600)
	code, out, errs = runCLI(t, nil, "config", "check", "--config", prod)
	if code != 1 || out != "" || !strings.Contains(errs, "rules_dir: "+rulez+" does not exist") {
		t.Fatalf("missing rules_dir: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	if err := os.Mkdir(rulez, 0o755); err != nil {
		t.Fatal(err)
	}
	// An empty rules_dir: the switch would refuse it too, unless allowed.
	code, out, errs = runCLI(t, nil, "config", "check", "--config", prod)
	if code != 1 || !strings.Contains(errs, "rules_dir: rules directory "+rulez+": no risk rule: found no rule files") {
		t.Fatalf("empty rules_dir: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	allowed := write("prod-empty.yaml", "rules_dir: "+rulez+"\nrisk: {allow_empty_rules: true}\nlisteners: [{addr: 127.0.0.1:0}]\n"+
		"security: {lmk_file: "+lmkOK+", card_hash_key_hex: "+strings.Repeat("c3", 32)+"}\n", 0o600)
	if code, out, errs = runCLI(t, nil, "config", "check", "--config", allowed); code != 0 {
		t.Fatalf("empty rules_dir allowed: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	if err := os.WriteFile(filepath.Join(rulez, "00-deny.yaml"), []byte("rules:\n  - {id: big, condition: \"txn.amount > 99999999\", action: decline, response_code: \"61\"}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out, errs = runCLI(t, nil, "config", "check", "--config", prod); code != 0 {
		t.Fatalf("rules_dir with a rule: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	demoRulez := write("demo-rulez.yaml", "demo: true\nrules_dir: "+filepath.Join(dir, "none")+"\nlisteners: [{addr: 127.0.0.1:0}]\nsecurity: {card_hash_key_hex: "+config.DemoCardHashKey+"}\n", 0o600)
	if code, out, errs = runCLI(t, nil, "config", "check", "--config", demoRulez); code != 0 {
		t.Fatalf("demo without its rules_dir: exit %d, stdout %q, stderr %q", code, out, errs)
	}

	if code, _, _ := runCLI(t, nil, "config", "check"); code != 2 {
		t.Errorf("no --config: exit %d, want 2", code)
	}
}

// TestConfigCheckLeaseTTL: `switchyard config check` takes cluster.lease_ttl and
// cluster.lease_refresh within their bounds and refuses, naming the key and why,
// a TTL JetStream cannot keep (not whole seconds), one past the bound, and a
// refresh over half the TTL.
func TestConfigCheckLeaseTTL(t *testing.T) {
	dir := t.TempDir()
	write := func(name, lease string) string {
		p := filepath.Join(dir, name)
		body := "demo: true\ndata_dir: " + filepath.Join(dir, "data") + "\nlisteners: [{addr: 127.0.0.1:0}]\nsecurity: {card_hash_key_hex: " + config.DemoCardHashKey + "}\n" +
			"cluster: {mode: embedded, node: 1, embedded: {server_name: n1}, " + lease + "}\n"
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil || os.Chmod(p, 0o600) != nil {
			t.Fatal(err)
		}
		return p
	}
	if code, out, errs := runCLI(t, nil, "config", "check", "--config", write("good.yaml", "lease_ttl: 10s, lease_refresh: 2s")); code != 0 {
		t.Fatalf("lease_ttl 10s, lease_refresh 2s: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	for _, tc := range []struct{ lease, want string }{
		{"lease_ttl: 7500ms", `cluster.lease_ttl: "7500ms" is not whole seconds`},
		{"lease_ttl: 90s", `cluster.lease_ttl: "90s" is not from 2s to 1m0s`},
		{"lease_ttl: 4s, lease_refresh: 3s", `cluster.lease_refresh: 3s is more than half of lease_ttl (4s)`},
	} {
		code, out, errs := runCLI(t, nil, "config", "check", "--config", write("bad.yaml", tc.lease))
		if code != 1 || out != "" || !strings.Contains(errs, tc.want) {
			t.Errorf("%s: exit %d, stdout %q, stderr %q; want exit 1 naming %q", tc.lease, code, out, errs, tc.want)
		}
	}
}

// TestConfigCheckClusterFiles: `switchyard config check` reads a cluster node's
// TLS files as its start would: a tls block whose files do not exist (the
// commented block of examples/cluster/node1.yaml uncommented before the openssl
// recipe ran), a key file readable by others and an external cluster's missing
// credential are refused naming the key at fault; made files pass. Before, the
// check said ok and the start failed.
func TestConfigCheckClusterFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name, cluster string) string {
		p := filepath.Join(dir, name)
		body := "demo: true\ndata_dir: " + filepath.Join(dir, "data") + "\nlisteners: [{addr: 127.0.0.1:0}]\nsecurity: {card_hash_key_hex: " + config.DemoCardHashKey + "}\n" +
			"cluster: " + cluster + "\n"
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil || os.Chmod(p, 0o600) != nil {
			t.Fatal(err)
		}
		return p
	}
	embedded := func(ca, cert, key string) string {
		return "{mode: embedded, node: 1, embedded: {server_name: n1, tls: {ca_file: " + ca + ", cert_file: " + cert + ", key_file: " + key + "}}}"
	}
	pki := filepath.Join(dir, "pki")
	missing := write("missing.yaml", embedded(filepath.Join(pki, "cluster-ca.pem"), filepath.Join(pki, "n1.pem"), filepath.Join(pki, "n1.key")))
	code, out, errs := runCLI(t, nil, "config", "check", "--config", missing)
	if code != 1 || out != "" || !strings.Contains(errs, "cluster.embedded.tls.ca_file: stat "+filepath.Join(pki, "cluster-ca.pem")) {
		t.Fatalf("TLS files missing: exit %d, stdout %q, stderr %q", code, out, errs)
	}

	if err := os.Mkdir(pki, 0o700); err != nil {
		t.Fatal(err)
	}
	ca, err := devpki.NewCA(pki, "cluster")
	if err != nil {
		t.Fatal(err)
	}
	cert, key, err := ca.Issue(pki, "n1")
	if err != nil {
		t.Fatal(err)
	}
	good := write("good.yaml", embedded(ca.File, cert, key))
	if code, out, errs := runCLI(t, nil, "config", "check", "--config", good); code != 0 {
		t.Fatalf("TLS files made: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	if err := os.Chmod(key, 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errs = runCLI(t, nil, "config", "check", "--config", good)
	if code != 1 || !strings.Contains(errs, "cluster.embedded.tls.key_file: "+key+" is readable by others") {
		t.Fatalf("key readable by others: exit %d, stdout %q, stderr %q", code, out, errs)
	}

	creds := filepath.Join(dir, "node.creds")
	external := write("external.yaml", "{mode: external, node: 1, external: {urls: [nats://127.0.0.1:4222], credentials_file: "+creds+"}}")
	code, out, errs = runCLI(t, nil, "config", "check", "--config", external)
	if code != 1 || !strings.Contains(errs, "cluster.external.credentials_file: stat "+creds) {
		t.Fatalf("external credential missing: exit %d, stdout %q, stderr %q", code, out, errs)
	}
}

// TestConfigCheckCardHashKeyBlock: `switchyard config check` opens
// security.card_hash_key_block under the LMK as the start does: a block with a
// MAC digit flipped, one with its mode of use changed and one made under another
// LMK are refused with the start's "does not open under this LMK", naming the key;
// the block as made passes. Before, the check said ok and the start failed.
func TestConfigCheckCardHashKeyBlock(t *testing.T) {
	dir := t.TempDir()
	lmk, other, key := make([]byte, 32), make([]byte, 32), make([]byte, 32)
	for _, b := range [][]byte{lmk, other, key} {
		rand.Read(b)
	}
	lmkFile := filepath.Join(dir, "lmk.hex")
	if err := os.WriteFile(lmkFile, []byte(hex.EncodeToString(lmk)), 0o600); err != nil || os.Chmod(lmkFile, 0o600) != nil {
		t.Fatal(err)
	}
	block, err := keys.WrapCardHashKey(lmk, key, nil)
	if err != nil {
		t.Fatal(err)
	}
	foreign, err := keys.WrapCardHashKey(other, key, nil)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name, block string) string {
		p := filepath.Join(dir, name)
		body := "demo: true\nlisteners: [{addr: 127.0.0.1:0}]\nsecurity: {lmk_file: " + lmkFile + ", card_hash_key_block: " + block + "}\n"
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil || os.Chmod(p, 0o600) != nil {
			t.Fatal(err)
		}
		return p
	}
	if code, out, errs := runCLI(t, nil, "config", "check", "--config", write("good.yaml", block)); code != 0 || !strings.Contains(out, ": ok") {
		t.Fatalf("the block as made: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	flip := func(s string, i int) string {
		c := byte('0')
		if s[i] == '0' {
			c = '1'
		}
		return s[:i] + string(c) + s[i+1:]
	}
	if block[8] != 'G' {
		t.Fatalf("mode of use of %.16s...: %c, want G", block, block[8])
	}
	for name, b := range map[string]string{
		"a MAC digit flipped":     flip(block, len(block)-1),
		"the mode of use changed": block[:8] + "C" + block[9:],
		"under another LMK":       foreign,
	} {
		code, out, errs := runCLI(t, nil, "config", "check", "--config", write("bad.yaml", b))
		if code != 1 || out != "" || !strings.Contains(errs, "security.card_hash_key_block: card hash key block: does not open under this LMK") {
			t.Errorf("%s: exit %d, stdout %q, stderr %q; want exit 1 saying the block does not open under this LMK", name, code, out, errs)
		}
	}
}
