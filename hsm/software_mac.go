package hsm

import (
	"context"
	"fmt"

	"github.com/switchyard/switchyard/hsm/mac"
	"github.com/switchyard/switchyard/internal/sym"
)

func checkMACKey(rec KeyRecord, l *loaded, generate bool) error {
	modes, what := "CV", "verify MACs"
	if generate {
		modes, what = "CG", "generate MACs"
	}
	if (l.retail == nil && l.cmac == nil) || !modeIn(l.header.ModeOfUse, modes) {
		return usageErr(rec, l, what)
	}
	return nil
}

func (l *loaded) macSum(dst, data []byte) []byte {
	if l.retail != nil {
		return l.retail.Sum(dst, data)
	}
	return l.cmac.Sum(dst, data)[:len(dst)+MACLength]
}

func (l *loaded) macVerify(m, data []byte) bool {
	if l.retail != nil {
		return l.retail.Verify(m, data)
	}
	return l.cmac.Verify(m, data)
}

// dukptMAC computes the 8-byte DUKPT MAC of data into dst (request or response
// direction: TDES retail MAC with the MAC variant, AES CMAC with the MAC
// generation/verification working key).
func (s *Software) dukptMAC(ctx context.Context, key KeyRef, ksn string, response bool, data, dst []byte) ([]byte, error) {
	wk, isAES, _, _, err := s.dukptKey(ctx, key, ksn, false, response)
	if err != nil {
		return nil, err
	}
	defer sym.Wipe(wk)
	if isAES {
		m, err := mac.NewAESCMAC(wk)
		if err != nil {
			return nil, err
		}
		return m.Sum(dst, data)[:len(dst)+MACLength], nil
	}
	r, err := mac.NewRetail(wk, mac.Padding1)
	if err != nil {
		return nil, err
	}
	return r.Sum(dst, data), nil
}

// GenerateMAC implements HSM.
func (s *Software) GenerateMAC(ctx context.Context, req MACRequest) ([]byte, error) {
	if req.KSN != "" {
		m, err := s.dukptMAC(ctx, req.Key, req.KSN, req.Response, req.Data, make([]byte, 0, 16))
		if err != nil {
			return nil, fmt.Errorf("generate MAC: %w", err)
		}
		return m, nil
	}
	rec, l, err := s.key(ctx, req.Key, Outbound)
	if err != nil {
		return nil, fmt.Errorf("generate MAC: %w", err)
	}
	if err := checkMACKey(rec, l, true); err != nil {
		return nil, fmt.Errorf("generate MAC: %w", err)
	}
	return l.macSum(make([]byte, 0, 16), req.Data), nil
}

// VerifyMAC implements HSM. With version 0 it also tries the versions of the key in
// their grace window.
func (s *Software) VerifyMAC(ctx context.Context, req MACRequest, m []byte) error {
	if len(m) != MACLength {
		return fmt.Errorf("verify MAC: %w: MAC is %d bytes, want %d", ErrInput, len(m), MACLength)
	}
	if req.KSN != "" {
		got, err := s.dukptMAC(ctx, req.Key, req.KSN, req.Response, req.Data, make([]byte, 0, 16))
		if err != nil {
			return fmt.Errorf("verify MAC: %w", err)
		}
		if !mac.Equal(got, m) {
			return fmt.Errorf("verify MAC under DUKPT KSN %s: %w", req.KSN, ErrMACMismatch)
		}
		return nil
	}
	rec, l, err := s.key(ctx, req.Key, Inbound)
	if err != nil {
		return fmt.Errorf("verify MAC: %w", err)
	}
	if err := checkMACKey(rec, l, false); err != nil {
		return fmt.Errorf("verify MAC: %w", err)
	}
	if l.macVerify(m, req.Data) {
		return nil
	}
	if req.Key.Version == 0 {
		olds, _ := s.store.GraceVersions(ctx, req.Key.ID)
		for _, old := range olds {
			if old.Usable(s.now(), Inbound) != nil {
				continue
			}
			ol, err := s.load(old)
			if err == nil && checkMACKey(old, ol, false) == nil && ol.macVerify(m, req.Data) {
				return nil
			}
		}
	}
	return fmt.Errorf("verify MAC under %s: %w", rec.Ref(), ErrMACMismatch)
}
