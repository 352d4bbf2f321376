package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/switchyard/switchyard/switch/journal"
	"github.com/switchyard/switchyard/switch/message"
	"github.com/switchyard/switchyard/switch/qr"
	"github.com/switchyard/switchyard/switch/server"
	"github.com/switchyard/switchyard/switch/termclient"
	"github.com/switchyard/switchyard/switch/wallet"
)

// TestQRCrashInFlight: the switch is killed (SIGKILL) while a QR payment waits on a
// silent wallet that took it; at restart the payment is in doubt, journaled 91 and
// cancelled at the wallet through the store-and-forward queue: nothing stays paid.
func TestQRCrashInFlight(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := switchyardBinary(t)
	sim, err := wallet.StartSim("127.0.0.1:0", wallet.SimConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	dir := t.TempDir()
	p := &switchProc{t: t, bin: bin, dir: dir}
	p.cfg = filepath.Join(dir, "switch.yaml")
	cfg := fmt.Sprintf(`demo: true
demo_load_terminals: 200
data_dir: %s
rules_dir: ../../rules
listeners: [{name: ascii, addr: "%s"}]
admin: {addr: "%s"}
qr: {demo_wallet: {external: "%s"}}
security: {card_hash_key_hex: "5357495443485941524444454d4f2d4b45592d464f522d504154482d48415348"}
`, filepath.Join(dir, "data"), "127.0.0.1:0", "127.0.0.1:0", sim.URL())
	if err := os.WriteFile(p.cfg, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	p.start()
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			p.kill()
		}
	})
	c, err := termclient.Dial(p.termAddr, message.DialectASCII, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	go func() {
		m, _ := termclient.Build(qrPay(qrCodes[qr.WeChat], 1091), message.DialectASCII)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, _ = c.Send(ctx, m, nil) // never answered: the switch dies first
	}()
	var rrn string
	waitFor(t, "the wallet to take the payment", func() bool {
		trades := sim.Trades()
		if len(trades) == 1 {
			rrn = trades[0].OutTradeNo
		}
		return rrn != ""
	})
	p.kill()
	p.start()
	waitFor(t, "the payment cancelled at the wallet after the restart", func() bool {
		tr, _ := sim.Trade(rrn)
		return tr.State == wallet.Revoked
	})
	if err := p.stop(); err != nil {
		t.Fatal(err)
	}
	off, err := server.OpenOffline(filepath.Join(dir, "data"), "test", "Asia/Shanghai", keysNone())
	if err != nil {
		t.Fatal(err)
	}
	defer off.Close()
	var rec *journal.Record
	_ = off.Journal.Scan(context.Background(), journal.Query{RRN: rrn}, func(r *journal.Record) bool { rec = r; return false })
	if rec == nil || rec.RC != "91" || rec.ReversedBy != "switch:restart" || rec.QR != qr.WeChat {
		t.Fatalf("journal after the restart: %+v", rec)
	}
}
