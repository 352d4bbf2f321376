package keys

import (
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/hsm"
)

// A demo key ID whose first version is not the demo key is still refused: the data
// directory was not made by demo mode. (Rotated demo keys are accepted: see
// switch/server TestDemoRestartsAfterKeyRotation.)
func TestLoadDemoRefusesForeignFirstVersion(t *testing.T) {
	s, _, _, _ := newTestStore(t, true)
	r := rec(DemoKeys[0].ID, 1, DemoKeys[0].Type, "AAAAA1", time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
	if err := s.Put(ctx, hsm.PutRequest{Record: r}); err != nil {
		t.Fatal(err)
	}
	err := LoadDemo(ctx, s, nil)
	if err == nil || !strings.Contains(err.Error(), DemoKeys[0].ID+" version 1 is in the store with KCV AAAAA1") {
		t.Fatalf("LoadDemo over a foreign first demo key: %v", err)
	}
}
