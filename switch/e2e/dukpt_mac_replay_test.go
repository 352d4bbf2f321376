package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/switchyard/switchyard/switch/config"
	"github.com/switchyard/switchyard/switch/message"
	"github.com/switchyard/switchyard/switch/termclient"
)

// TestReplayedKSNWithoutPINForwardedOnce: on the message path a request's MAC is
// under the terminal's static TAK (no dialect carries a DUKPT MAC; the HSM's DUKPT
// MAC verification takes the KSN's counter, TestDUKPTMACReplayRefused), and a KSN
// without a PIN block takes no counter. A SoftPOS purchase carrying a KSN and no PIN,
// MAC'd under its TAK, replayed byte for byte, on the payShield backend: the
// replay is the journal's duplicate, answered with the first answer and not sent to
// the issuer again; the replay changed in any byte (another STAN, amount) fails its
// MAC, which only the terminal can make.
func TestReplayedKSNWithoutPINForwardedOnce(t *testing.T) {
	addr, _ := startHSMServe(t)
	f := startDemo(t, func(c *config.Config) {
		c.HSM = config.HSM{Backend: "payshield", Addrs: []string{addr}, Timeout: config.Duration(2 * time.Second)}
	})
	tak, _ := termclient.RetailMAC(demoTAK)
	var recorded [8]byte
	mac := func(data []byte) ([8]byte, error) {
		m, err := tak(data)
		recorded = m
		return m, err
	}
	tx := softpos(1700)
	tx.TLV = append(tx.TLV, [2]string{"KS", nextKSN()})
	m, err := termclient.Build(tx, message.DialectASCII)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := message.Pack(m, mac)
	if err != nil {
		t.Fatal(err)
	}
	var answers []termclient.Result
	for range 2 {
		out, err := f.c.Exchange(context.Background(), tx.TID, tx.STAN, raw)
		if err != nil {
			t.Fatal(err)
		}
		answers = append(answers, decode(t, out))
	}
	if answers[0].RC != "00" || answers[1].RRN != answers[0].RRN || answers[1].AuthCode != answers[0].AuthCode {
		t.Fatalf("the replay of a KSN without a PIN: first %+v, replay %+v; want the first answer again", answers[0], answers[1])
	}
	if e := f.sim().Ledger()[answers[0].RRN]; e.Requests != 1 {
		t.Fatalf("the replay was forwarded: the issuer saw %d requests", e.Requests)
	}
	// Changed (another STAN) but carrying the recorded MAC: refused.
	tx.STAN = termclient.NextSTAN()
	m2, _ := termclient.Build(tx, message.DialectASCII)
	m2raw, _ := message.Pack(m2, func([]byte) ([8]byte, error) { return recorded, nil })
	out, err := f.c.Exchange(context.Background(), tx.TID, tx.STAN, m2raw)
	if err != nil {
		t.Fatal(err)
	}
	if r := decode(t, out); r.RC == "00" || r.Reason != "mac-invalid" {
		t.Fatalf("a changed replay with the recorded MAC: %+v; want refused mac-invalid", r)
	}
}
