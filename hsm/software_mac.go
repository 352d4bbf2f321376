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

// checkScheme refuses a MAC scheme the key cannot serve: the CUP ECB MAC needs a
// TDES-2KEY retail key.
func checkScheme(rec KeyRecord, l *loaded, scheme MACScheme) error {
	switch scheme {
	case "":
		return nil
	case MACSchemeCUPECB:
		if l.retail == nil {
			return fmt.Errorf("%w: %s is not a TDES-2KEY retail MAC key and cannot compute the %s MAC", ErrKeyUsage, rec.Ref(), scheme)
		}
		return nil
	}
	return fmt.Errorf("%w: unknown MAC scheme %q", ErrInput, scheme)
}

func (l *loaded) macSum(dst, data []byte, scheme MACScheme) []byte {
	if scheme == MACSchemeCUPECB {
		return l.retail.CUPECB(dst, data)
	}
	if l.retail != nil {
		return l.retail.Sum(dst, data)
	}
	return l.cmac.Sum(dst, data)[:len(dst)+MACLength]
}

func (l *loaded) macVerify(m, data []byte, scheme MACScheme) bool {
	if scheme == MACSchemeCUPECB {
		var buf [8]byte
		return mac.Equal(m, l.retail.CUPECB(buf[:0], data))
	}
	if l.retail != nil {
		return l.retail.Verify(m, data)
	}
	return l.cmac.Verify(m, data)
}

// dukptMAC computes the 8-byte DUKPT MAC of data into dst (request or response
// direction: TDES retail MAC with the MAC variant, AES CMAC with the MAC
// generation/verification working key).
//
// With check set (a request's MAC to verify) the KSN's counter must be above the
// device's last accepted one (ErrReplay), checked before any MAC is computed, as
// decryptDUKPT checks it before decrypting a PIN block; the caller advances it
// once the MAC verified. It returns the KSN's device and counter.
func (s *Software) dukptMAC(ctx context.Context, key KeyRef, ksn string, response, check bool, data, dst []byte) ([]byte, string, uint32, error) {
	wk, isAES, device, counter, err := s.dukptKey(ctx, key, ksn, false, response)
	if err != nil {
		return nil, "", 0, err
	}
	defer sym.Wipe(wk)
	if check {
		if err := s.store.CheckDUKPTCounter(ctx, device, counter); err != nil {
			return nil, "", 0, fmt.Errorf("DUKPT KSN %s: %w", ksn, err)
		}
	}
	m, err := dukptSum(wk, isAES, data, dst)
	return m, device, counter, err
}

// dukptSum is the DUKPT MAC of data under the working key wk.
func dukptSum(wk []byte, isAES bool, data, dst []byte) ([]byte, error) {
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
		m, _, _, err := s.dukptMAC(ctx, req.Key, req.KSN, req.Response, false, req.Data, make([]byte, 0, 16))
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
	if err := checkScheme(rec, l, req.Scheme); err != nil {
		return nil, fmt.Errorf("generate MAC: %w", err)
	}
	return l.macSum(make([]byte, 0, 16), req.Data, req.Scheme), nil
}

// VerifyMAC implements HSM. With version 0 it also tries the versions of the key in
// their grace window.
func (s *Software) VerifyMAC(ctx context.Context, req MACRequest, m []byte) error {
	if len(m) != MACLength {
		return fmt.Errorf("verify MAC: %w: MAC is %d bytes, want %d", ErrInput, len(m), MACLength)
	}
	if req.KSN != "" {
		// A request's DUKPT MAC uses its KSN as a PIN block does: a KSN whose
		// counter is not above the device's last accepted one is a replay
		// (ErrReplay), refused before the MAC is computed, and the counter is
		// recorded once the MAC verified. Until 6 December 2026 only PIN blocks
		// were checked, and a recorded DUKPT-MAC'd request without a PIN verified
		// again and again.
		check := !req.Response
		got, device, counter, err := s.dukptMAC(ctx, req.Key, req.KSN, req.Response, check, req.Data, make([]byte, 0, 16))
		if err != nil {
			return fmt.Errorf("verify MAC: %w", err)
		}
		if !mac.Equal(got, m) {
			return fmt.Errorf("verify MAC under DUKPT KSN %s: %w", req.KSN, ErrMACMismatch)
		}
		if check {
			if err := s.store.AdvanceDUKPTCounter(ctx, device, counter); err != nil {
				return fmt.Errorf("verify MAC: DUKPT KSN %s: %w", req.KSN, err)
			}
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
	if err := checkScheme(rec, l, req.Scheme); err != nil {
		return fmt.Errorf("verify MAC: %w", err)
	}
	if l.macVerify(m, req.Data, req.Scheme) {
		return nil
	}
	if req.Key.Version == 0 {
		olds, _ := s.store.GraceVersions(ctx, req.Key.ID)
		for _, old := range olds {
			if old.Usable(s.now(), Inbound) != nil {
				continue
			}
			ol, err := s.load(old)
			if err == nil && checkMACKey(old, ol, false) == nil && checkScheme(old, ol, req.Scheme) == nil && ol.macVerify(m, req.Data, req.Scheme) {
				return nil
			}
		}
	}
	return fmt.Errorf("verify MAC under %s: %w", rec.Ref(), ErrMACMismatch)
}
