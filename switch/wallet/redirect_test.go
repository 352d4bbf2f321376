package wallet

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard/switchyard/switch/issuer"
	"github.com/switchyard/switchyard/switch/pipeline"
)

// TestConnectorRefusesRedirects: the wallet API answers every request with a 307
// to another server. The HTTP client followed it, and a 307 resends the body: the
// payer's code went to an address nobody configured. The connector follows no
// redirect: the other server gets nothing, the pay is in doubt (queried, then 91 at
// the timeout, the pipeline cancelling it), a refund is in doubt, and the error says
// a redirect was refused and where to.
func TestConnectorRefusesRedirects(t *testing.T) {
	var elsewhere atomic.Int32
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		elsewhere.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"result":"SUCCESS","transaction_id":"T123456789"}`))
	}))
	t.Cleanup(other.Close)
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL+r.URL.Path, http.StatusTemporaryRedirect)
	}))
	t.Cleanup(api.Close)
	for _, client := range []*http.Client{nil, {}} {
		c, err := New(Config{ID: "wechat", URL: api.URL, Timeout: 300 * time.Millisecond, Poll: 20 * time.Millisecond, Client: client})
		if err != nil {
			t.Fatal(err)
		}
		_, _, err = c.Pay(t.Context(), pipeline.WalletPayment{RRN: "100000000001", Code: "134567890123456789", TID: "T0000001", MID: "M1", Currency: "156", Amount: 1000})
		if !errors.Is(err, issuer.ErrTimeout) {
			t.Errorf("pay redirected: %v; want a timeout (in doubt: queried until the timeout, then cancelled)", err)
		}
		_, _, err = c.Refund(t.Context(), pipeline.WalletRefund{RRN: "100000000002", OriginalRRN: "100000000001", Amount: 100})
		if !errors.Is(err, issuer.ErrTimeout) || !strings.Contains(err.Error(), ErrRedirect.Error()) {
			t.Errorf("refund redirected: %v; want in doubt, naming the refused redirect", err)
		}
		if err := c.Reverse(t.Context(), "100000000001", false); !errors.Is(err, ErrRedirect) {
			t.Errorf("reverse redirected: %v; want ErrRedirect", err)
		}
	}
	if n := elsewhere.Load(); n != 0 {
		t.Fatalf("the redirect's target got %d requests, want none", n)
	}
}
