package server

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/dgraph-io/badger/v4"
	"github.com/rs/zerolog"

	"github.com/switchyard/switchyard/internal/cli/apiclient"
	"github.com/switchyard/switchyard/switch/admin"
	"github.com/switchyard/switchyard/switch/api"
	"github.com/switchyard/switchyard/switch/registry"
)

// TestWarnTokenUsersLookAlike: the start's warning about an admin token and a
// console user of one name also finds a user whose name reads as the token's
// ("Alice" for alice), which the review now treats as one person. Before, only
// the identical name was found.
func TestWarnTokenUsersLookAlike(t *testing.T) {
	db, err := badger.Open(badger.DefaultOptions(t.TempDir()).WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	reg, err := registry.New(db, nil, registry.Options{SeenFlushInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close() })
	if _, err := reg.AddUser(registry.Actor{Name: registry.SystemActor}, "Alice", registry.RoleReviewer, "alice's long password"); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	s := &Server{Registry: reg, log: zerolog.New(&buf)}
	s.warnTokenUsers([]admin.Token{{Token: "t1", Principal: admin.Principal{Name: "alice", Role: admin.RoleOperator}},
		{Token: "t2", Principal: admin.Principal{Name: "bob", Role: admin.RoleReviewer}}})
	out := buf.String()
	if !strings.Contains(out, `"token":"alice"`) || !strings.Contains(out, `"user":"Alice"`) {
		t.Fatalf("no warning for the token alice beside the user Alice: %q", out)
	}
	if strings.Contains(out, `"token":"bob"`) {
		t.Fatalf("a warning for the token bob: %q", out)
	}
}

// TestRemovedTokensChangesNotApproved: a change requested through the admin API
// with the demo operator's token is not approved once a reload has removed that
// token (403, naming why); it is approved once the token is back. Before, a
// reviewer applied the pending request of a token the configuration no longer
// had (someone who left).
func TestRemovedTokensChangesNotApproved(t *testing.T) {
	s := start(t, demoConfig(t, t.TempDir()), nil)
	ctx := context.Background()
	base := "http://" + s.AdminAddr()
	op := &apiclient.Client{BaseURL: base, Token: registry.DemoOperatorToken}
	rev := &apiclient.Client{BaseURL: base, Token: registry.DemoReviewerToken}
	var ch registry.Change
	if err := op.Do(ctx, "POST", "/api/v1/terminals/T0000002/suspend", registry.ReasonRequest{Reason: "lost"}, &ch); err != nil {
		t.Fatal(err)
	}
	all := api.DemoTokens()
	var without []admin.Token
	for _, tk := range all {
		if tk.Token != registry.DemoOperatorToken {
			without = append(without, tk)
		}
	}
	if err := s.Auth().SetTokens(without); err != nil {
		t.Fatal(err)
	}
	err := rev.Do(ctx, "POST", "/api/v1/changes/"+ch.ID+"/approve", registry.ReasonRequest{}, nil)
	var ae *apiclient.APIError
	if !errors.As(err, &ae) || ae.Status != http.StatusForbidden || !strings.Contains(err.Error(), "no admin token of the configuration has that name any more") {
		t.Fatalf("approval of a removed token's change: %v, want 403", err)
	}
	if err := s.Auth().SetTokens(all); err != nil {
		t.Fatal(err)
	}
	if err := rev.Do(ctx, "POST", "/api/v1/changes/"+ch.ID+"/approve", registry.ReasonRequest{}, nil); err != nil {
		t.Fatalf("approval once the token is back: %v", err)
	}
}
