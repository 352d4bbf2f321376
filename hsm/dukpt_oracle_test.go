package hsm_test

import (
	"errors"
	"testing"

	"github.com/switchyard/switchyard/hsm"
	"github.com/switchyard/switchyard/hsm/pinblock"
)

// TestDUKPTReplayIsNoPINOracle replays the published X9.24-1 Annex A.4 PIN block
// (KSN FFFF9876543210E00001, PIN 1234, PAN 4012345678909) after it was taken, under
// PANs changed in the digits that cover PIN digits 3 and 4 of a format 0 block. Each
// replay must be refused as a replay before the block is decrypted: when the counter
// was checked only after the decode, a PAN under which the block still decoded
// answered ErrReplay (63 dukpt-replay) and one under which it did not answered
// ErrInput (55 pin-block-invalid), so anyone who had recorded one DUKPT PIN block
// could replay it without limit and read from the answers which PIN digits d keep
// d XOR delta a digit (the classic PAN-substitution attack on format 0).
func TestDUKPTReplayIsNoPINOracle(t *testing.T) {
	e := newEnv(t, hsm.Options{})
	tr := func(pan string) error {
		_, err := e.hsm.TranslatePIN(e.ctx, hsm.TranslatePINRequest{KSN: "FFFF9876543210E00001", SourceFormat: pinblock.Format0,
			PINBlock: hx(t, "1B9C1845EB993A7A"), Dest: hsm.KeyRef{ID: "demo.ZPK"}, DestFormat: pinblock.Format0, PAN: pan})
		return err
	}
	if err := tr("4012345678909"); err != nil {
		t.Fatalf("first use of the published block: %v", err)
	}
	// 4012...: PIN digit 3 (3) is XORed with PAN digit 4; with 0 the block decodes
	// (to PIN digit 7), with 8 it does not (3^4^8 = 15).
	for _, pan := range []string{"4012345678909", "0012345678909", "8012345678909", "4812345678909"} {
		if err := tr(pan); !errors.Is(err, hsm.ErrReplay) {
			t.Errorf("replay under PAN %s: err = %v, want ErrReplay whatever the PAN", pan, err)
		}
	}
	if c, _, _ := e.store.DUKPTCounter("FFFF9876543210E00000"); c != 1 {
		t.Fatalf("counter %d after the replays, want 1", c)
	}
}
