package hsm

import (
	"fmt"

	"github.com/switchyard/switchyard/hsm/pinblock"
)

// FormatPolicy is the PIN block format policy of TranslatePIN.
type FormatPolicy struct {
	// Allow4ToTDES permits translating an ISO format 4 (AES) PIN block to a TDES
	// format (0 or 3), a downgrade that is refused by default.
	Allow4ToTDES bool
}

// CheckTranslation applies the format policy to a translation from format src to
// format dst: both must be supported formats, the destination is never format 1
// (it does not bind the PAN), and format 4 goes to format 0 or 3 only when
// p.Allow4ToTDES is set.
func CheckTranslation(src, dst pinblock.Format, p FormatPolicy) error {
	if !src.Valid() {
		return fmt.Errorf("%w: source PIN block format %d is not supported (want 0, 1, 3 or 4)", ErrInput, int(src))
	}
	if !dst.Valid() {
		return fmt.Errorf("%w: destination PIN block format %d is not supported (want 0, 3 or 4)", ErrInput, int(dst))
	}
	if dst == pinblock.Format1 {
		return fmt.Errorf("%w: translation to PIN block format 1 is never allowed (it does not bind the PAN)", ErrPolicy)
	}
	if src == pinblock.Format4 && dst != pinblock.Format4 && !p.Allow4ToTDES {
		return fmt.Errorf("%w: translation from format 4 (AES) to %s (TDES) is a downgrade and is not configured", ErrPolicy, dst)
	}
	return nil
}
