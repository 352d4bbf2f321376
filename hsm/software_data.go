package hsm

import (
	"context"
	"fmt"
)

// DecryptData decrypts data (a multiple of the block size) in ECB mode under a
// terminal data key (TDK), as UnionPay terminals encrypt track data. With version 0
// the versions of the key in their grace window are not tried: the caller names the
// version the terminal signed in with, or takes the current one. The caller wipes
// the result, which is card data.
func (s *Software) DecryptData(ctx context.Context, ref KeyRef, data []byte) ([]byte, error) {
	rec, l, err := s.key(ctx, ref, Inbound)
	if err != nil {
		return nil, fmt.Errorf("decrypt data: %w", err)
	}
	if rec.Type != TDK || l.c == nil || !modeIn(l.header.ModeOfUse, "DB") {
		return nil, fmt.Errorf("decrypt data: %w", usageErr(rec, l, "decrypt data"))
	}
	bs := l.c.BlockSize()
	if len(data) == 0 || len(data)%bs != 0 {
		return nil, fmt.Errorf("decrypt data under %s: %w: %d bytes is not a multiple of %d", rec.Ref(), ErrInput, len(data), bs)
	}
	out := make([]byte, len(data))
	for i := 0; i < len(data); i += bs {
		l.c.Decrypt(out[i:i+bs], data[i:i+bs])
	}
	return out, nil
}
