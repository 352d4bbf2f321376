package registry

import (
	"context"
	"crypto/hmac"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"
)

// TestWebhookSecretRotation: while a previous secret is configured, each post
// carries the signature under the current secret and, in
// X-Switchyard-Signature-Previous, the one under the secret it replaces, so that a
// receiver verifying with either accepts it; SetWebhookSecrets (a reload) changes
// both from the next post, and a previous secret equal to the current one adds no
// header.
func TestWebhookSecretRotation(t *testing.T) {
	oldSecret := []byte("old-webhook-secret-0123456789")
	newSecret := []byte("new-webhook-secret-0123456789")
	type got struct{ sig, prev string }
	posts := make(chan got, 1)
	// A receiver that verifies with the old secret only, as one not yet switched:
	// it accepts a post whose main or previous signature verifies under it.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		ts := r.Header.Get(WebhookTimestampHeader)
		g := got{sig: r.Header.Get(WebhookSignatureHeader), prev: r.Header.Get(WebhookSignaturePreviousHeader)}
		posts <- g
		want := SignWebhook(oldSecret, ts, body)
		if !hmac.Equal([]byte(g.sig), []byte(want)) && !hmac.Equal([]byte(g.prev), []byte(want)) {
			http.Error(w, "bad signature", http.StatusUnauthorized)
		}
	}))
	t.Cleanup(srv.Close)
	f := newFixtureOpts(t, Options{SeenFlushInterval: -1, WebhookAllow: []string{srv.URL + "/alerts"}})
	mon := NewMonitor(f.reg, f.clock.Now, MonitorOptions{WebhookSecret: newSecret, WebhookSecretPrevious: oldSecret,
		WebhookAttempts: 1, WebhookTimeout: 5 * time.Second})
	ctx := context.Background()
	body := []byte(`{"event":"terminal-offline"}`)
	ts := func() string { return strconv.FormatInt(f.clock.Now().Unix(), 10) }

	if err := mon.postWebhook(ctx, srv.URL+"/alerts", body); err != nil {
		t.Fatalf("during the rotation, a receiver on the old secret refused the post: %v", err)
	}
	g := <-posts
	if g.sig != SignWebhook(newSecret, ts(), body) || g.prev != SignWebhook(oldSecret, ts(), body) {
		t.Errorf("during the rotation: signature %q, previous %q; want the new secret's and the old one's", g.sig, g.prev)
	}

	// The rotation ends (previous removed, SIGHUP): the old receiver now refuses.
	mon.SetWebhookSecrets(newSecret, nil)
	if err := mon.postWebhook(ctx, srv.URL+"/alerts", body); err == nil {
		t.Error("after the rotation, a receiver on the old secret still accepted the post")
	}
	if g := <-posts; g.sig != SignWebhook(newSecret, ts(), body) || g.prev != "" {
		t.Errorf("after the rotation: signature %q, previous %q; want the new secret's alone", g.sig, g.prev)
	}

	// A previous secret equal to the current one is no rotation.
	mon.SetWebhookSecrets(oldSecret, oldSecret)
	if err := mon.postWebhook(ctx, srv.URL+"/alerts", body); err != nil {
		t.Fatal(err)
	}
	if g := <-posts; g.prev != "" {
		t.Errorf("previous equal to current: previous header %q, want none", g.prev)
	}
}
