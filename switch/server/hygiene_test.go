package server

import (
	"bytes"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/switch/internal/testswitch"
	"github.com/switchyard/switchyard/switch/message"
	"github.com/switchyard/switchyard/switch/termclient"
)

// TestMisreadFrameLogsNoHiddenPANDigits: a track 2 purchase whose DE 35 length
// prefix took one wrong digit on the way ("34" read as "04") is unpacked with every
// field after DE 35 shifted into the card data: the DE 41 and DE 11 read then are
// digits of the PAN and track, not a terminal ID and STAN. The switch answers or
// closes; its log must not hold those digits, least of all the PAN's middle digits
// that the masked PAN of the same card's next transaction (476173******0119) hides.
func TestMisreadFrameLogsNoHiddenPANDigits(t *testing.T) {
	const pan = "4761739001010119"
	track := pan + "=29121010000012345"
	logs := &testswitch.SyncBuffer{}
	s := start(t, demoConfig(t, t.TempDir()), logs)

	tx := purchase("", 1000)
	tx.Track2 = track
	m, err := termclient.Build(tx, message.DialectASCII)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := message.Pack(m, nil)
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(raw, []byte(track))
	if i < 2 || string(raw[i-2:i]) != "34" {
		t.Fatalf("DE 35 with its length prefix not found in %q", raw)
	}
	raw[i-2] = '0' // LL 34 -> 04
	c := rawDial(t, s.ListenerAddr("ascii"))
	c.writeFrame(raw)
	c.read() // a 30, or the connection closed

	// The terminal sends it again, right this time: its line shows the masked PAN.
	send(t, dial(t, s, "ascii", message.DialectASCII), message.DialectASCII, purchase(pan, 1001))
	if err := s.Drain(); err != nil {
		t.Fatal(err)
	}
	out := logs.String()
	if !strings.Contains(out, "476173******0119") || !strings.Contains(out, "format error") {
		t.Fatalf("the log lines to scan are missing:\n%s", out)
	}
	hidden := pan[6 : len(pan)-4] // what the mask hides
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, hidden) || strings.Contains(line, "=2912") {
			t.Errorf("PAN digits beyond the first 6 and last 4, or track data, in the log: %s", line)
		}
	}
}
