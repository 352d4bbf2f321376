package bench

import (
	"crypto/ed25519"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/switchyard/switchyard/switch/attest"
	"github.com/switchyard/switchyard/switch/termclient"
)

// The SoftPOS phones' attestation tokens (DE 48 AJ). A generated request carries a
// placeholder in AJ ("sign", "sign:-300" for a token issued 300 s ago, "forge",
// "replay"); build turns it into a token once the request's STAN, amount and DE 7
// are known: signed by the demo attestation service (whose key demo mode pins), by
// a hooked app's own key under the service's key ID (forged), or a token the fleet
// issued earlier to an honest phone (replayed).

// Labels of the hooked-SoftPOS scenarios.
const (
	LabelForgedToken   = "hooked-softpos-forged-token"
	LabelReplayedToken = "hooked-softpos-replayed-token"
)

var (
	demoAttest   = attest.DemoSigner()
	hookedSigner = func() *attest.Signer {
		s, err := attest.NewSigner(attest.DemoKeyID, ed25519.NewKeyFromSeed([]byte("a-hooked-app-signs-its-own-token")))
		if err != nil {
			panic(err)
		}
		return s
	}()
)

// tokenBook keeps the last good tokens the fleet issued, for the replay scenario.
type tokenBook struct {
	mu   sync.Mutex
	last []string
	next int
}

func (b *tokenBook) add(tok string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.last) < 64 {
		b.last = append(b.last, tok)
		return
	}
	b.last[b.next%64] = tok
	b.next++
}

func (b *tokenBook) pick(i int) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.last) == 0 {
		return ""
	}
	return b.last[i%len(b.last)]
}

// attestTokens replaces an AJ placeholder of tx with its token; an honest phone's
// (label legitimate) is kept for the replay scenario.
func (f *Fleet) attestTokens(tx *termclient.Txn, label string) error {
	for i := range tx.TLV {
		if tx.TLV[i][0] != "AJ" {
			continue
		}
		mode, device := tx.TLV[i][1], ""
		for _, x := range tx.TLV {
			if x[0] == "DI" {
				device = x[1]
			}
		}
		signer, iat := demoAttest, tx.Time
		switch {
		case mode == "replay":
			if tok := f.tokens.pick(int(tx.Amount)); tok != "" {
				tx.TLV[i][1] = tok
				return nil
			}
			// Nothing to replay yet: a forged one instead, still an attack.
			signer = hookedSigner
		case mode == "forge":
			signer = hookedSigner
		case strings.HasPrefix(mode, "sign:"):
			s, _ := strconv.Atoi(strings.TrimPrefix(mode, "sign:"))
			iat = iat.Add(time.Duration(s) * time.Second)
		}
		tok, err := termclient.AttestToken(signer, *tx, device, "2.1.0", attest.Integrity{TEE: true}, iat)
		if err != nil {
			return err
		}
		if label == LabelLegit && strings.HasPrefix(mode, "sign") {
			f.tokens.add(tok)
		}
		tx.TLV[i][1] = tok
	}
	return nil
}
