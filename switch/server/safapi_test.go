package server

import (
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// TestSAFListEmpty: with nothing owed to any issuer, GET /api/v1/saf answers an
// empty list, not null (a client iterating the answer, or a script comparing it
// with [], took null for an error).
func TestSAFListEmpty(t *testing.T) {
	cfg := demoConfig(t, t.TempDir())
	cfg.Journal.MinFreeMB = -1
	s, err := New(cfg, zerolog.Nop(), testDemoIssuer)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	req, err := http.NewRequest("GET", "http://"+s.AdminAddr()+"/api/v1/saf", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer demo-operator-7Kq2")
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || string(b) != "[]\n" {
		t.Fatalf("GET /api/v1/saf with nothing owed: %d %q, want 200 \"[]\\n\"", resp.StatusCode, b)
	}
}
