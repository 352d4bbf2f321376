package payshield

import (
	"errors"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/hsm"
)

// A token refused for its scheme is described by its first character and length:
// a host that sent a clear key where the token belongs must not see it logged.
func TestRefusedTokenNotQuoted(t *testing.T) {
	clear := "0123456789ABCDEFFEDCBA9876543210"
	_, err := (&records{m: map[string]hsm.KeyRecord{}}).record("U" + clear)
	if !errors.Is(err, errScheme) || strings.Contains(err.Error(), clear[:6]) || !strings.Contains(err.Error(), `"U" and 32 characters more`) {
		t.Errorf("record(U + a key): %v, want errScheme without the key's digits", err)
	}
	_, err = (&variantLMK{}).record("S"+clear, "", "")
	if !errors.Is(err, errScheme) || strings.Contains(err.Error(), clear[:6]) {
		t.Errorf("variant record(S + a key): %v, want errScheme without the key's digits", err)
	}
}
