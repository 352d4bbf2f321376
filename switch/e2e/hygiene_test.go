package e2e

import (
	"bytes"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/internal/sparse"
	"github.com/switchyard/switchyard/keys"
	"github.com/switchyard/switchyard/switch/termclient"
)

// TestNoKeysOrPINBlocksInTheClear runs PIN and MAC traffic and a key change, then scans
// the log output and every file of the data directory for the demo keys, the PIN blocks
// the terminals sent and the PANs.
func TestNoKeysOrPINBlocksInTheClear(t *testing.T) {
	f := startDemo(t, nil)
	mac, _ := termclient.RetailMAC(demoTAK)
	var secrets [][]byte
	for i := 0; i < 5; i++ {
		tx := pos(1000 + int64(i))
		tx.PAN = testPAN(600 + i)
		tx.PINBlock, _ = termclient.PINBlockTPK(demoTPK, "1234", tx.PAN)
		secrets = append(secrets, []byte(strings.ToUpper(hex.EncodeToString(tx.PINBlock))), []byte(tx.PAN))
		if r := f.send(tx); r.RC != "00" {
			t.Fatal(r)
		}
		base := softpos(2000)
		base.PAN = testPAN(700 + i) // a card again and again at the stall would be a cash-out pattern
		sp := withDUKPTPIN(t, base, "1234")
		secrets = append(secrets, []byte(strings.ToUpper(hex.EncodeToString(sp.PINBlock))))
		if r := sendOn(t, f.c, sp, mac); r.RC != "00" {
			t.Fatal(r)
		}
	}
	if r := f.send(termclient.Txn{MTI: "0800", NetCode: "161", TID: "T0000001", TLV: t1Identity}); r.RC != "00" {
		t.Fatal(r)
	}
	for _, k := range keys.DemoKeys {
		secrets = append(secrets, []byte(strings.ToUpper(k.Hex)), []byte(strings.ToLower(k.Hex)))
		raw, _ := hex.DecodeString(k.Hex)
		secrets = append(secrets, raw)
	}
	f.c.Close()
	if err := f.s.Drain(); err != nil {
		t.Fatal(err)
	}
	logs := []byte(f.logs.String())
	if !bytes.Contains(logs, []byte(`"message":"txn"`)) {
		t.Fatal("no transaction log lines to scan")
	}
	check := func(where string, b []byte) {
		for _, s := range secrets {
			if len(s) >= 8 && bytes.Contains(b, s) {
				t.Errorf("secret %.6s... in the clear in %s", s, where)
			}
		}
	}
	check("the log", logs)
	files := 0
	_ = filepath.Walk(f.dir, func(path string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return err
		}
		b, err := sparse.ReadData(path) // Badger's files are mostly holes
		if err != nil {
			return err
		}
		files++
		check(path, b)
		return nil
	})
	if files == 0 {
		t.Fatal("nothing in the data directory")
	}
}
