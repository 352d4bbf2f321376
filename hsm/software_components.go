package hsm

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/switchyard/switchyard/hsm/kcv"
	"github.com/switchyard/switchyard/hsm/tr31"
	"github.com/switchyard/switchyard/internal/sym"
)

// ComponentExporter is implemented by HSMs that can split a key into clear
// components for key custodians (an export under dual control: each custodian takes
// one component, none sees the key). A payShield prints such components on its own
// printer instead; the payShield client does not implement it.
type ComponentExporter interface {
	// ExportComponents splits the key into n random components whose XOR is the
	// key and returns them with their KCVs; the caller wipes them.
	ExportComponents(ctx context.Context, ref KeyRef, n int) (comps [][]byte, kcvs []string, err error)
}

var _ ComponentExporter = (*Software)(nil)

// ExportComponents implements ComponentExporter: n-1 random components and the last
// one the key XOR them. A key of TR-31 exportability E or S may be split, one of N
// may not.
//
// Why E suffices (and S is not required, unlike ECB export, checkExport): ANSI
// X9.143 (TR-31) header byte 11 defines E as "exportable under a KEK in a form
// meeting the requirements of X9.24 Parts 1 or 2", S as "exportable under a KEK in
// a form not necessarily meeting" them (an ECB or variant-wrapped key), N as not
// exportable. Full-length components handed to different custodians under dual
// control and split knowledge are such a form: X9.24-1 allows a key to exist outside
// a secure cryptographic device only enciphered or as components under split
// knowledge, and PCI PIN Security Requirement 8 names "at least two separate
// full-length components" as a way to convey a secret key. Requiring S would be the
// less safe rule: a ZMK or BDK (E by default, ProfileFor) would have to be marked S
// before it could go to a partner in components, and S would also let it leave in
// ECB form under any KEK.
func (s *Software) ExportComponents(ctx context.Context, ref KeyRef, n int) ([][]byte, []string, error) {
	if n < 2 || n > 3 {
		return nil, nil, fmt.Errorf("export components: %w: %d components, want 2 or 3", ErrInput, n)
	}
	rec, err := s.store.Key(ctx, ref)
	if err != nil {
		return nil, nil, fmt.Errorf("export components: %w", err)
	}
	if err := rec.Usable(s.now(), Distribute); err != nil {
		return nil, nil, fmt.Errorf("export components: %w", err)
	}
	h, key, err := tr31.Unwrap(s.lmk, rec.Block)
	if err != nil {
		return nil, nil, fmt.Errorf("export components of %s: unwrap under the LMK: %w", rec.Ref(), err)
	}
	defer sym.Wipe(key)
	if err := checkBinding(rec, h, key); err != nil {
		return nil, nil, fmt.Errorf("export components: %w", err)
	}
	if h.Exportability != tr31.ExportSensitive && h.Exportability != tr31.ExportTrusted {
		return nil, nil, fmt.Errorf("export components of %s: %w: the key is not exportable (TR-31 exportability %c)", rec.Ref(), ErrPolicy, h.Exportability)
	}
	comps := make([][]byte, n)
	last := append([]byte(nil), key...)
	for i := range n - 1 {
		comps[i] = make([]byte, len(key))
		if _, err := io.ReadFull(s.opts.Rand, comps[i]); err != nil {
			sym.Wipe(last)
			return nil, nil, fmt.Errorf("export components: random: %w", err)
		}
		sym.XOR(last, last, comps[i])
	}
	comps[n-1] = last
	kcvs := make([]string, n)
	for i, c := range comps {
		k, err := kcv.Compute(c, rec.Algorithm.KCVMethod())
		if err != nil {
			return nil, nil, err
		}
		kcvs[i] = k.String()
	}
	ev := AuditEvent{Actor: ActorFrom(ctx), Action: "export-components", KeyID: rec.ID, Version: rec.Version, KeyType: string(rec.Type), KCV: rec.KCV,
		Detail: fmt.Sprintf("%d clear components for custodians, KCVs %s", n, strings.Join(kcvs, " "))}
	if err := s.store.Audit(ctx, ev); err != nil {
		for _, c := range comps {
			sym.Wipe(c)
		}
		return nil, nil, fmt.Errorf("export components of %s: audit: %w", rec.Ref(), err)
	}
	return comps, kcvs, nil
}
