package api_test

import (
	"context"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/keys"
)

// TestCeremonyAuditFailureChangesNothing: with the key store's database closed
// (every audit write fails), a cancel cancels nothing (the ceremony goes on, as
// the next refusal shows), and a component of an export whose take-component entry
// fails is not handed out and the export does not move on: asked again, it is
// component 2 again, and the export is still alice's with one component taken.
func TestCeremonyAuditFailureChangesNothing(t *testing.T) {
	alice, carol, db := productionKeysAPIOn(t)
	ctx := context.Background()
	c1, k1 := component(t)
	c2, k2 := component(t)
	spec := keys.SpecRequest{ID: "kept.ZMK", Type: "ZMK"}
	alice.Do(ctx, "POST", "/api/v1/keys/components", keys.ComponentRequest{SpecRequest: spec, Components: 2, Component: c1, KCV: k1}, nil)
	if err := carol.Do(ctx, "POST", "/api/v1/keys/components", keys.ComponentRequest{SpecRequest: spec, Components: 2, Component: c2, KCV: k2}, nil); err != nil {
		t.Fatal(err)
	}
	half := keys.SpecRequest{ID: "half.ZMK", Type: "ZMK"}
	if err := alice.Do(ctx, "POST", "/api/v1/keys/components", keys.ComponentRequest{SpecRequest: half, Components: 2, Component: c1, KCV: k1}, nil); err != nil {
		t.Fatal(err)
	}
	if err := alice.Do(ctx, "POST", "/api/v1/keys/kept.ZMK/export-components", keys.ExportComponentsRequest{Components: 2}, nil); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := carol.Do(ctx, "POST", cancelPath("half.ZMK"), keys.CancelCeremonyRequest{Kind: "import", Reason: "test"}, nil); err == nil || !strings.Contains(err.Error(), "the ceremony goes on") {
		t.Fatalf("a cancel whose audit entry fails: %v, want an error", err)
	}
	err := carol.Do(ctx, "POST", "/api/v1/keys/components", keys.ComponentRequest{SpecRequest: keys.SpecRequest{ID: "half.ZMK", Type: "TMK"}, Components: 2, Component: c2, KCV: k2}, nil)
	if status(err) != 409 || !strings.Contains(err.Error(), "started by alice") {
		t.Fatalf("after the failed cancel: %v, want 409: alice's ceremony goes on", err)
	}
	for range 2 {
		err := carol.Do(ctx, "POST", "/api/v1/keys/kept.ZMK/export-components", keys.ExportComponentsRequest{Components: 2}, nil)
		if err == nil || !strings.Contains(err.Error(), "component 2 not handed out") {
			t.Fatalf("a take whose audit entry fails: %v, want component 2 not handed out", err)
		}
	}
	err = carol.Do(ctx, "POST", "/api/v1/keys/kept.ZMK/export-components", keys.ExportComponentsRequest{Components: 3}, nil)
	if status(err) != 409 || !strings.Contains(err.Error(), "started by alice") || !strings.Contains(err.Error(), "1 of 2 components took (alice)") {
		t.Fatalf("another export: %v, want 409 naming alice's export, one component taken", err)
	}
}
