package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/switchyard/switchyard/switch/cup"
	"github.com/switchyard/switchyard/switch/message"
	"github.com/switchyard/switchyard/switch/termclient"
)

// seenView is a terminal's last-seen as the admin API shows it (the console and
// the offline alerts read the same data).
type seenView struct {
	Time     time.Time `json:"time"`
	Address  string    `json:"address"`
	Location *struct {
		Lat float64 `json:"lat"`
	} `json:"location"`
}

// lastSeen returns terminal id's last-seen from the admin API (nil: never seen).
func (f *fixture) lastSeen(id string) *seenView {
	f.t.Helper()
	req, _ := http.NewRequest("GET", "http://"+f.s.AdminAddr()+"/api/v1/terminals/"+id, nil)
	req.Header.Set("Authorization", "Bearer "+tokOperator)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		f.t.Fatalf("GET terminal %s: %d %s", id, resp.StatusCode, b)
	}
	var v struct {
		LastSeen *seenView `json:"last_seen"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		f.t.Fatalf("terminal %s JSON: %v: %s", id, err, b)
	}
	return v.LastSeen
}

// sameSeen says whether two last-seens are the same, and how they differ.
func sameSeen(a, b *seenView) (bool, string) {
	switch {
	case a == nil && b == nil:
		return true, ""
	case a == nil || b == nil:
		return false, fmt.Sprintf("%+v then %+v", a, b)
	case !a.Time.Equal(b.Time):
		return false, fmt.Sprintf("time %v then %v", a.Time, b.Time)
	case (a.Location == nil) != (b.Location == nil) || a.Location != nil && a.Location.Lat != b.Location.Lat:
		return false, fmt.Sprintf("location %+v then %+v", a.Location, b.Location)
	}
	return true, ""
}

// TestUnprovenEchoNotSeen: an echo that does not prove to be the terminal's (an
// ASCII 0800 without a verified MAC, a cup 0820 on a connection the terminal did
// not prove itself on) and a cup sign-in (no MAC either) are answered 00 but do not
// move the terminal's last-seen time, address or place, which the console shows and
// the offline alerts read; a purchase that passes the checks, a MAC'd cup sale and a
// cup echo on that sale's connection do. Until 6 December 2026 any echo naming the
// terminal did: whoever knew a stolen terminal's ID kept it looking online at its
// shop, its offline alert silent; and until later that day a cup sign-in, which
// anyone can replay, and the echoes on its connection did.
func TestUnprovenEchoNotSeen(t *testing.T) {
	f := startCUP(t)
	const tid = "T0000001" // registered without a MAC key
	echo := func(geo string) termclient.Txn {
		return termclient.Txn{MTI: "0800", NetCode: message.NMEcho, TID: tid, MID: "000000000000001", STAN: termclient.NextSTAN(),
			Time: time.Now(), TLV: [][2]string{{"GL", geo}}}
	}
	if r := f.send(echo("31.230400,121.473700")); r.RC != "00" {
		t.Fatalf("ASCII echo: %+v, want 00", r)
	}
	if ls := f.lastSeen(tid); ls != nil {
		t.Fatalf("an ASCII echo without a MAC made %s seen: %+v", tid, ls)
	}
	if r := f.send(pos(1000)); r.RC != "00" {
		t.Fatalf("purchase: %+v", r)
	}
	home := f.lastSeen(tid)
	if home == nil || home.Location == nil || home.Location.Lat != 39.9042 {
		t.Fatalf("after a purchase at home: last seen %+v, want at 39.9042", home)
	}
	if r := f.send(echo("31.230400,121.473700")); r.RC != "00" {
		t.Fatalf("ASCII echo: %+v, want 00", r)
	}
	if same, diff := sameSeen(home, f.lastSeen(tid)); !same {
		t.Fatalf("an ASCII echo without a MAC moved the last-seen: %s", diff)
	}
	// cup: the sign-in carries no MAC: it does not make the terminal seen, nor do
	// echoes on its connection, until a request whose MAC verifies (a sale) comes
	// on it; then the sale and the echoes there do. An 0820 echo on another
	// connection never does.
	term := cupTerminal(t, f, "003", cupHome)
	if same, diff := sameSeen(home, f.lastSeen(tid)); !same {
		t.Fatalf("a cup sign-in (no MAC) moved the last-seen: %s", diff)
	}
	if ans, err := term.Echo(); err != nil || ans.Str(39) != "00" {
		t.Fatalf("cup echo: %v %s", err, answerSummary(ans))
	}
	if same, diff := sameSeen(home, f.lastSeen(tid)); !same {
		t.Fatalf("a cup echo on the connection of a sign-in, before any MAC, moved the last-seen: %s", diff)
	}
	// A MAC'd cup sale is seen (STANs clear of the ASCII purchase's).
	term.SetSTAN(700)
	if a := cupDo(t, term, cup.Txn{Kind: "sale", PAN: cupCard, Expiry: cupCardExp, Amount: 1100, PIN: "1234"}); a.Str(39) != "00" {
		t.Fatalf("cup sale: %s", cup.Summary(a))
	}
	sold := f.lastSeen(tid)
	if sold == nil || !sold.Time.After(home.Time) {
		t.Fatalf("cup sale: last seen %+v, want after %v", sold, home.Time)
	}
	if ans, err := term.Echo(); err != nil || ans.Str(39) != "00" {
		t.Fatalf("cup echo: %v %s", err, answerSummary(ans))
	}
	echoed := f.lastSeen(tid)
	if echoed == nil || !echoed.Time.After(sold.Time) {
		t.Fatalf("cup echo on the connection of a MAC'd sale: last seen %+v, want after %v", echoed, sold.Time)
	}
	other, err := cup.DialTerminal(f.s.ListenerAddr("cup"), tid, "000000000000001", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if ans, err := other.Echo(); err != nil || ans.Str(39) != "00" {
		t.Fatalf("cup echo on another connection: %v %s", err, answerSummary(ans))
	}
	if same, diff := sameSeen(echoed, f.lastSeen(tid)); !same {
		t.Fatalf("a cup echo on another connection moved the last-seen: %s", diff)
	}
}
