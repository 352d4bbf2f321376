package cup

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/switchyard/switchyard/hsm"
	"github.com/switchyard/switchyard/internal/syncbuf"
	"github.com/switchyard/switchyard/switch/frontend"
	"github.com/switchyard/switchyard/switch/message"
)

// TestSingleLengthMAKNeedsOptIn: the sign-in schemes 001 and 003 carry an 8-byte MAK
// in F62 (a single-length DES key, found by exhaustive search from a few MAC'd
// messages); 004 a double-length one. Without Config.SingleLengthMAC such a sign-in is
// refused 63, as one asking for a single-length PIK is without SingleLengthPIN, before
// any key is made, logged at Warn naming the configuration key; 004 signs in. With it,
// 003 signs in (and 001 with SingleLengthPIN as well) and gets a single-length MAK.
// Before, 001 and 003 issued single-length MAKs unasked.
func TestSingleLengthMAKNeedsOptIn(t *testing.T) {
	tmk, _ := hex.DecodeString("2315208C9110AD40F5B83C4A6E1D7F92")
	now := time.Date(2026, 12, 6, 8, 0, 0, 0, time.UTC)
	conn := &frontend.Conn{Listener: "cup", Dialect: message.DialectCUP}
	signIn := func(a *Adapter, term *Terminal, scheme string) *Frame {
		t.Helper()
		f := NewFrame(term.TPDU, term.Header, "0800").Set(11, term.NextSTAN()).Set(41, term.TID).Set(42, term.MID).Set(60, "00"+term.batch+scheme)
		raw, err := f.Encode(nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := a.Process(context.Background(), conn, raw)
		if err != nil {
			t.Fatal(err)
		}
		ans, err := Decode(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return ans
	}
	newTerm := func(tid string) *Terminal {
		return &Terminal{TID: tid, MID: "000000000000001", TMK: tmk, batch: "000007",
			TPDU: TPDU{0x60, 0, 3, 0, 0}, Header: Header{0x60, 0x31, 0, 0x31, 0, 0}}
	}
	for _, c := range []struct {
		name           string
		pin, mac       bool
		scheme, want   string
		reason         string // of a refusal
		singleLengthOK bool   // the MAK made is single-length (equal halves)
	}{
		{"003 without the opt-in", false, false, "003", "63", "single-length-mac-key-refused", false},
		{"001 with the PIN opt-in only", true, false, "001", "63", "single-length-mac-key-refused", false},
		{"001 with the MAC opt-in only", false, true, "001", "63", "single-length-pin-key-refused", false},
		{"004 without the opt-in", false, false, "004", "00", "", false},
		{"003 with the MAC opt-in", false, true, "003", "00", "", true},
		{"001 with both opt-ins", true, true, "001", "00", "", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := &versionedHSM{tmk: tmk}
			var logs syncbuf.Buffer
			a := NewAdapter(Config{HSM: h, Terminals: fakeTerminals{}, KeyVersion: h.version, Now: func() time.Time { return now },
				SingleLengthPIN: c.pin, SingleLengthMAC: c.mac, Logger: zerolog.New(&logs)}, &fakePipeline{})
			term := newTerm("T0000001")
			ans := signIn(a, term, c.scheme)
			if ans.Str(39) != c.want {
				t.Fatalf("sign-in %s: %s, want %s", c.scheme, Summary(ans), c.want)
			}
			if c.want != "00" {
				if ans.Has(62) {
					t.Errorf("refused sign-in carries F62 (%d bytes)", len(ans.Bytes(62)))
				}
				for _, id := range []string{"T0000001.TPK", "T0000001.TAK"} {
					if _, err := h.version(id); !errors.Is(err, hsm.ErrKeyNotFound) {
						t.Errorf("refused sign-in made %s", id)
					}
				}
				if !strings.Contains(logs.String(), `"reason":"`+c.reason+`"`) {
					t.Errorf("no answer logged with reason %s: %s", c.reason, logs.String())
				}
				if c.reason == "single-length-mac-key-refused" && !strings.Contains(logs.String(), "cup.single_length_mac_keys") {
					t.Errorf("the refusal's warning does not name cup.single_length_mac_keys: %s", logs.String())
				}
				return
			}
			if err := term.installKeys(c.scheme, ans.Bytes(62)); err != nil {
				t.Fatal(err)
			}
			h.mu.Lock()
			key := h.keys["T0000001.TAK"][0]
			h.mu.Unlock()
			if single := bytes.Equal(key[:8], key[8:]); single != c.singleLengthOK {
				t.Errorf("sign-in %s made a MAK with equal halves %v, want %v", c.scheme, single, c.singleLengthOK)
			}
		})
	}
}
