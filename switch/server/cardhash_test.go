package server

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/switchyard/switchyard/internal/cli/apiclient"
	"github.com/switchyard/switchyard/keys"
	"github.com/switchyard/switchyard/switch/config"
	"github.com/switchyard/switchyard/switch/internal/testswitch"
	"github.com/switchyard/switchyard/switch/registry"
)

// Moving the card hash key under the LMK: a switch that has it in the clear hands out
// its TR-31 block under the LMK to an admin (audited as an export in the key audit
// log); a switch started with that block in security.card_hash_key_block opens it and
// hashes cards as before. A block made under another LMK stops the start.
func TestCardHashKeyMovedUnderTheLMK(t *testing.T) {
	pan := testCard(0)
	c := demoConfig(t, t.TempDir())
	s := start(t, c, nil)
	want := s.Pipeline.CardHash(pan)
	admin := &apiclient.Client{BaseURL: "http://" + s.AdminAddr(), Token: registry.DemoAdminToken}
	op := &apiclient.Client{BaseURL: "http://" + s.AdminAddr(), Token: registry.DemoOperatorToken}
	ctx := context.Background()
	if err := op.Do(ctx, "POST", "/api/v1/keys/card-hash-key/export", nil, nil); err == nil || !strings.Contains(err.Error(), "403") {
		t.Fatalf("an operator takes the card hash key's block: %v, want 403", err)
	}
	var res keys.CardHashKeyBlock
	if err := admin.Do(ctx, "POST", "/api/v1/keys/card-hash-key/export", nil, &res); err != nil {
		t.Fatal(err)
	}
	clearKey, _ := hex.DecodeString(config.DemoCardHashKey)
	got, err := keys.UnwrapCardHashKey(keys.DemoLMK(), res.Block)
	if err != nil || !bytes.Equal(got, clearKey) || res.KCV != keys.CardHashKeyKCV(clearKey) || res.Source != "security.card_hash_key_hex" {
		t.Fatalf("the block: %+v opens to %x (%v); want the demo card hash key, KCV %s", res, got, err, keys.CardHashKeyKCV(clearKey))
	}
	if strings.Contains(strings.ToUpper(res.Block), strings.ToUpper(config.DemoCardHashKey[:16])) {
		t.Fatalf("the block %s shows the key", res.Block)
	}
	log, err := s.Keys.AuditLog(0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	last := log[len(log)-1]
	if last.Action != "export" || last.KeyID != keys.CardHashKeyLabel || last.Actor == "" || last.KCV != res.KCV {
		t.Fatalf("the key audit log ends with %+v, want the card hash key's export by the admin", last)
	}
	s.Close()

	c2 := demoConfig(t, t.TempDir())
	c2.Security.CardHashKeyHex = ""
	c2.Security.CardHashKeyBlock = res.Block
	if err := c2.Validate(); err != nil {
		t.Fatal(err)
	}
	var logs testswitch.SyncBuffer
	s2 := start(t, c2, &logs)
	if h := s2.Pipeline.CardHash(pan); h != want {
		t.Fatalf("card hash under the key from its block %s, from the clear key %s", h, want)
	}
	if !strings.Contains(logs.String(), "card hash key opened under the LMK") || !strings.Contains(logs.String(), res.KCV) {
		t.Fatalf("the start does not say the card hash key came from its block:\n%s", logs.String())
	}
	s2.Close()

	other := make([]byte, 32)
	rand.Read(other)
	foreign, err := keys.WrapCardHashKey(other, clearKey, nil)
	if err != nil {
		t.Fatal(err)
	}
	c3 := demoConfig(t, t.TempDir())
	c3.Security.CardHashKeyHex = ""
	c3.Security.CardHashKeyBlock = foreign
	if s3, err := New(c3, zerolog.Nop(), testDemoIssuer); err == nil {
		s3.Close()
		t.Fatal("a switch started with a card hash key block made under another LMK")
	} else if !strings.Contains(err.Error(), "security.card_hash_key_block") || !strings.Contains(err.Error(), "does not open under this LMK") {
		t.Fatalf("start with a foreign block: %v", err)
	}
}

// Outside demo mode a card hash key in the clear still starts the switch (existing
// deployments), with a warning at start that says where it is and how to move it
// under the LMK; the key itself is never in the log.
func TestCardHashKeyInTheClearWarned(t *testing.T) {
	dir := t.TempDir()
	lmk := make([]byte, 32)
	rand.Read(lmk)
	lmkFile := filepath.Join(dir, "lmk.hex")
	if err := os.WriteFile(lmkFile, []byte(hex.EncodeToString(lmk)), 0o600); err != nil {
		t.Fatal(err)
	}
	key := make([]byte, 32)
	rand.Read(key)
	keyFile := filepath.Join(dir, "card-hash.key")
	if err := os.WriteFile(keyFile, []byte(hex.EncodeToString(key)), 0o600); err != nil {
		t.Fatal(err)
	}
	yaml := "data_dir: " + filepath.Join(dir, "data") + "\nrules_dir: ../../rules\nlisteners: [{addr: 127.0.0.1:0}]\n" +
		"admin: {addr: 127.0.0.1:0, tokens: [{name: alice, role: admin, token: 3f9c2a7be41d8056c7e9a1b4d2f60835}]}\n" +
		"security: {lmk_file: " + lmkFile + ", card_hash_key_file: " + keyFile + "}\n"
	c, err := config.Parse([]byte(yaml), "switch.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var logs testswitch.SyncBuffer
	s, err := New(c, zerolog.New(&logs))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	out := logs.String()
	var warned bool
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, `"level":"warn"`) && strings.Contains(line, "card hash key is in the clear") &&
			strings.Contains(line, "security.card_hash_key_file") && strings.Contains(line, "switchyard keys card-hash-key") &&
			strings.Contains(line, keys.CardHashKeyKCV(key)) {
			warned = true
		}
	}
	if !warned {
		t.Errorf("no warning at start for the card hash key in the clear:\n%s", out)
	}
	if strings.Contains(strings.ToLower(out), hex.EncodeToString(key)) {
		t.Error("the log holds the card hash key")
	}
	// Its block under the LMK, from the running switch, opens under that LMK.
	admin := &apiclient.Client{BaseURL: "http://" + s.AdminAddr(), Token: "3f9c2a7be41d8056c7e9a1b4d2f60835"}
	var res keys.CardHashKeyBlock
	if err := admin.Do(context.Background(), "POST", "/api/v1/keys/card-hash-key/export", nil, &res); err != nil {
		t.Fatal(err)
	}
	if got, err := keys.UnwrapCardHashKey(lmk, res.Block); err != nil || !bytes.Equal(got, key) {
		t.Fatalf("the block opens to %x, %v", got, err)
	}
}
