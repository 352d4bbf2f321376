package server

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/switch/cluster"
)

// TestStateConsumerReadiness: a shared store's follower that cannot get a consumer
// of the STATE stream (here: the stream's consumer limit reached after its consumer
// was deleted) while the journal's applier holds one makes the node not ready, and
// /readyz names the store and the server's refusal; not before the limits
// (a follower just without one, an applier whose own consumer is new, JetStream
// found wanting by /readyz a moment ago), and
// ready again by itself once the follower has a consumer.
func TestStateConsumerReadiness(t *testing.T) {
	base := t.TempDir()
	s := start(t, oneNodeCluster(t, filepath.Join(base, "a"), filepath.Join(base, "jetstream")), nil)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := s.cl.ready(); err != nil {
		t.Fatalf("a fresh node: %v", err)
	}

	// Every follower holds its consumer: the stream's limit at their number, and
	// the registry's follower's consumer deleted, it cannot get another.
	js := s.cl.node.JetStream()
	st, err := js.Stream(ctx, "STATE")
	if err != nil {
		t.Fatal(err)
	}
	var registry []string
	n := 0
	for c := range st.ListConsumers(ctx).Info() {
		n++
		if c.Config.FilterSubject == "state.registry" || slices.Contains(c.Config.FilterSubjects, "state.registry") {
			registry = append(registry, c.Name)
		}
	}
	if len(registry) != 1 {
		t.Fatalf("%d consumers of state.registry among %d, want the registry follower's one", len(registry), n)
	}
	limit := func(max int) {
		t.Helper()
		info, err := st.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		c := info.Config
		c.MaxConsumers = max
		if _, err := js.UpdateStream(ctx, c); err != nil {
			t.Fatalf("STATE with max_consumers %d: %v", max, err)
		}
	}
	limit(n - 1)
	if err := st.DeleteConsumer(ctx, registry[0]); err != nil {
		t.Fatal(err)
	}
	var follower *cluster.Follower
	for _, f := range s.cl.followed {
		if f.log.Name() == "registry" {
			follower = f.f
		}
	}
	// The follower notices the deletion and fails to create another.
	for {
		has, _, err := follower.Consumer()
		if !has && err != nil && strings.Contains(err.Error(), "maximum consumers limit reached") {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the registry's follower still has a consumer (%v) or no error (%v)", has, err)
		case <-time.After(10 * time.Millisecond): // polling the follower's state
		}
	}
	_, since, _ := follower.Consumer()

	// Within the limits: ready.
	s.cl.stateWithout, s.cl.journalHolder = time.Hour, 0
	if err := s.cl.ready(); err != nil {
		t.Fatalf("a follower without a consumer for less than its limit: %v", err)
	}
	_, held := s.cl.journal.Consumer()
	s.cl.stateWithout, s.cl.journalHolder = 0, time.Since(held)+time.Hour
	if err := s.cl.ready(); err != nil {
		t.Fatalf("the applier's consumer newer than its limit: %v", err)
	}
	// The applier's consumer older than the limit, but JetStream found wanting
	// after it.
	s.cl.jsWanting.Store(time.Now().UnixNano()) // as after a check that failed
	s.cl.stateWithout, s.cl.journalHolder = 0, time.Since(held)/2
	if err := s.cl.ready(); err != nil {
		t.Fatalf("JetStream wanting less than the limit ago: %v", err)
	}
	s.cl.jsWanting.Store(0)
	// Past them: not ready, and why.
	s.cl.stateWithout, s.cl.journalHolder = time.Millisecond, 0
	err = s.cl.ready()
	if err == nil || !strings.Contains(err.Error(), "store registry") || !strings.Contains(err.Error(), "no consumer of the STATE stream") ||
		!strings.Contains(err.Error(), "maximum consumers limit reached") {
		t.Fatalf("/readyz with the registry's follower without a consumer since %v: %v", since, err)
	}
	t.Logf("/readyz: %v", err)
	// `switchyard cluster status` names it too. (Another follower that happened to
	// replace its consumer now would meet the limit as well: only the registry's
	// is certain.)
	seen := false
	for _, st := range s.cl.storeStates(ctx) {
		if st.Store != "registry" {
			continue
		}
		seen = true
		if st.Following || st.NoConsumerSince == nil || st.NoConsumerFor <= 0 || !strings.Contains(st.FollowerError, "maximum consumers limit reached") {
			t.Errorf("status of the registry: %+v; want no consumer since a moment ago, and the refusal", st)
		}
	}
	if !seen {
		t.Error("the status lists no registry store")
	}

	// The limit lifted, the follower gets a consumer by itself.
	limit(-1)
	for {
		if has, _, _ := follower.Consumer(); has {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the registry's follower has no consumer a minute after the limit was lifted: %v", s.cl.ready())
		case <-time.After(10 * time.Millisecond): // polling the follower's state
		}
	}
	if err := s.cl.ready(); err != nil {
		t.Fatalf("the follower has a consumer again: %v", err)
	}
	for _, st := range s.cl.storeStates(ctx) {
		if st.Store == "registry" && (!st.Following || st.NoConsumerSince != nil || st.FollowerError != "") {
			t.Errorf("status of the registry once its follower has a consumer: %+v", st)
		}
	}
}
