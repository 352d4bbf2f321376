package hsm

import (
	"context"
	"fmt"
)

func (s *Software) cvk(ctx context.Context, ref KeyRef, p Purpose, what string) (*loaded, error) {
	rec, l, err := s.key(ctx, ref, p)
	if err != nil {
		return nil, err
	}
	if l.cvv == nil {
		return nil, usageErr(rec, l, what)
	}
	return l, nil
}

// GenerateCVV implements HSM.
func (s *Software) GenerateCVV(ctx context.Context, req CVVRequest) (string, error) {
	l, err := s.cvk(ctx, req.Key, Outbound, "compute CVVs")
	if err != nil {
		return "", fmt.Errorf("generate CVV: %w", err)
	}
	v, err := l.cvv.Compute(req.PAN, req.Expiry, req.ServiceCode)
	if err != nil {
		return "", fmt.Errorf("generate CVV: %w: %w", ErrInput, err)
	}
	return v, nil
}

// VerifyCVV implements HSM.
func (s *Software) VerifyCVV(ctx context.Context, req CVVRequest, value string) error {
	l, err := s.cvk(ctx, req.Key, Inbound, "verify CVVs")
	if err != nil {
		return fmt.Errorf("verify CVV: %w", err)
	}
	ok, err := l.cvv.Verify(value, req.PAN, req.Expiry, req.ServiceCode)
	if err != nil {
		return fmt.Errorf("verify CVV: %w: %w", ErrInput, err)
	}
	if !ok {
		return fmt.Errorf("verify CVV under %s: %w", req.Key, ErrCVVMismatch)
	}
	return nil
}
