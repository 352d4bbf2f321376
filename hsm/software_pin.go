package hsm

import (
	"context"
	"crypto/cipher"
	"crypto/subtle"
	"errors"
	"fmt"

	"github.com/switchyard/switchyard/hsm/pinblock"
	"github.com/switchyard/switchyard/hsm/tr31"
	"github.com/switchyard/switchyard/internal/sym"
)

// checkPINKey checks a key may encrypt (enc) or decrypt PIN blocks.
func checkPINKey(rec KeyRecord, l *loaded, enc bool) error {
	modes, what := "BD", "decrypt PIN blocks"
	if enc {
		modes, what = "BE", "encrypt PIN blocks"
	}
	if l.header.Usage != tr31.UsagePIN || !modeIn(l.header.ModeOfUse, modes) || l.c == nil {
		return usageErr(rec, l, what)
	}
	return nil
}

func isDecodeErr(err error) bool {
	return errors.Is(err, pinblock.ErrControl) || errors.Is(err, pinblock.ErrFill) ||
		errors.Is(err, pinblock.ErrPINLength) || errors.Is(err, pinblock.ErrPINDigits)
}

// decryptStatic decrypts a PIN block under a static PIN key, trying the versions in
// their grace window when ref names the current version and decoding fails.
func (s *Software) decryptStatic(ctx context.Context, ref KeyRef, f pinblock.Format, block []byte, pan string, dst []byte) ([]byte, error) {
	rec, l, err := s.key(ctx, ref, Inbound)
	if err != nil {
		return dst, err
	}
	if err := checkPINKey(rec, l, false); err != nil {
		return dst, err
	}
	if l.c.BlockSize() != f.BlockSize() {
		return dst, fmt.Errorf("%w: %s is a %s key; PIN block %s needs %s", ErrInput, rec.Ref(), rec.Algorithm, f, map[bool]string{true: "an AES key", false: "a TDES key"}[f == pinblock.Format4])
	}
	pin, err := pinblock.AppendDecrypt(dst, l.c, f, block, pan)
	if err == nil || ref.Version != 0 || !isDecodeErr(err) {
		if err != nil {
			return dst, fmt.Errorf("PIN block under %s: %w", rec.Ref(), err)
		}
		return pin, nil
	}
	firstErr := fmt.Errorf("PIN block under %s: %w", rec.Ref(), err)
	olds, gerr := s.store.GraceVersions(ctx, ref.ID)
	if gerr != nil {
		return dst, firstErr
	}
	for _, old := range olds {
		if old.Usable(s.now(), Inbound) != nil {
			continue
		}
		ol, lerr := s.load(old)
		if lerr != nil || checkPINKey(old, ol, false) != nil || ol.c.BlockSize() != f.BlockSize() {
			continue
		}
		if pin, err := pinblock.AppendDecrypt(dst, ol.c, f, block, pan); err == nil {
			return pin, nil
		}
	}
	return dst, firstErr
}

func (s *Software) decryptDUKPT(ctx context.Context, req *TranslatePINRequest, dst []byte) ([]byte, error) {
	wk, isAES, device, counter, err := s.dukptKey(ctx, req.Source, req.KSN, true, false)
	if err != nil {
		return dst, err
	}
	// A replayed KSN is refused before its block is decrypted: checked only after
	// the decode, a replay under a changed PAN answered ErrInput (55) where the
	// block no longer decoded and ErrReplay (63) where it did, an oracle on the PIN
	// digits of any recorded format 0 block. AdvanceDUKPTCounter below re-checks
	// under its lock (two requests of one KSN at once).
	if err := s.store.CheckDUKPTCounter(ctx, device, counter); err != nil {
		sym.Wipe(wk)
		return dst, fmt.Errorf("DUKPT KSN %s: %w", req.KSN, err)
	}
	var c cipher.Block
	if isAES {
		c, err = sym.NewAES(wk)
	} else {
		c, err = sym.NewTDES(wk)
	}
	sym.Wipe(wk)
	if err != nil {
		return dst, err
	}
	if c.BlockSize() != req.SourceFormat.BlockSize() {
		return dst, fmt.Errorf("%w: DUKPT KSN %s is %s; PIN block %s does not fit", ErrInput, req.KSN, map[bool]string{true: "AES (format 4)", false: "TDES (formats 0, 1, 3)"}[isAES], req.SourceFormat)
	}
	pin, err := pinblock.AppendDecrypt(dst, c, req.SourceFormat, req.PINBlock, req.sourcePAN())
	if err != nil {
		return dst, fmt.Errorf("PIN block under DUKPT KSN %s: %w", req.KSN, err)
	}
	if err := s.store.AdvanceDUKPTCounter(ctx, device, counter); err != nil {
		sym.Wipe(pin)
		return dst, fmt.Errorf("DUKPT KSN %s: %w", req.KSN, err)
	}
	return pin, nil
}

// sourcePAN is the PAN the source block is bound to.
func (r *TranslatePINRequest) sourcePAN() string {
	if r.SourcePAN != "" {
		return r.SourcePAN
	}
	return r.PAN
}

// TranslatePIN implements HSM.
func (s *Software) TranslatePIN(ctx context.Context, req TranslatePINRequest) ([]byte, error) {
	if err := CheckTranslation(req.SourceFormat, req.DestFormat, s.opts.Policy); err != nil {
		return nil, fmt.Errorf("translate PIN: %w", err)
	}
	if len(req.PINBlock) != req.SourceFormat.BlockSize() {
		return nil, fmt.Errorf("translate PIN: %w: PIN block is %d bytes, %s needs %d", ErrInput, len(req.PINBlock), req.SourceFormat, req.SourceFormat.BlockSize())
	}
	drec, dl, err := s.key(ctx, req.Dest, Outbound)
	if err != nil {
		return nil, fmt.Errorf("translate PIN: destination: %w", err)
	}
	if err := checkPINKey(drec, dl, true); err != nil {
		return nil, fmt.Errorf("translate PIN: %w", err)
	}
	if dl.c.BlockSize() != req.DestFormat.BlockSize() {
		return nil, fmt.Errorf("translate PIN: %w: destination %s is a %s key, PIN block %s does not fit it", ErrInput, drec.Ref(), drec.Algorithm, req.DestFormat)
	}
	sc := scratchPool.Get().(*scratch)
	defer func() {
		clear(sc.buf[:])
		scratchPool.Put(sc)
	}()
	var pin []byte
	if req.KSN != "" {
		pin, err = s.decryptDUKPT(ctx, &req, sc.buf[:0])
	} else {
		pin, err = s.decryptStatic(ctx, req.Source, req.SourceFormat, req.PINBlock, req.sourcePAN(), sc.buf[:0])
	}
	if err != nil {
		return nil, fmt.Errorf("translate PIN: %w", err)
	}
	out, err := pinblock.AppendEncrypt(make([]byte, 0, 16), dl.c, req.DestFormat, pin, req.PAN, s.opts.Rand)
	sym.Wipe(pin)
	if err != nil {
		return nil, fmt.Errorf("translate PIN: encrypt under %s: %w", drec.Ref(), err)
	}
	return out, nil
}

// VerifyPIN implements HSM.
func (s *Software) VerifyPIN(ctx context.Context, req VerifyPINRequest) error {
	if err := pinblock.CheckPIN(req.ReferencePIN); err != nil {
		return fmt.Errorf("verify PIN: %w: reference PIN: %w", ErrInput, err)
	}
	if len(req.PINBlock) != req.Format.BlockSize() || !req.Format.Valid() {
		return fmt.Errorf("verify PIN: %w: PIN block is %d bytes for %s", ErrInput, len(req.PINBlock), req.Format)
	}
	sc := scratchPool.Get().(*scratch)
	defer func() {
		clear(sc.buf[:])
		scratchPool.Put(sc)
	}()
	pin, err := s.decryptStatic(ctx, req.Key, req.Format, req.PINBlock, req.PAN, sc.buf[:0])
	if err != nil {
		return fmt.Errorf("verify PIN: %w", err)
	}
	ok := subtle.ConstantTimeCompare(pin, req.ReferencePIN) == 1
	sym.Wipe(pin)
	if !ok {
		return fmt.Errorf("verify PIN under %s: %w", req.Key, ErrPINMismatch)
	}
	return nil
}
