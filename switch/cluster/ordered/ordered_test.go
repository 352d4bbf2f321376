package ordered

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"go.uber.org/goleak"

	"github.com/switchyard/switchyard/internal/freeport"
	"github.com/switchyard/switchyard/internal/syncbuf"
)

// TestMain fails the package when a goroutine outlives its test: Stop must join
// the follower's goroutines.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// guard bounds every wait of these tests: a follower that hangs fails the test
// instead of the run. It is not a speed target; the waits end long before.
const guard = 30 * time.Second

// startServers starts n JetStream servers in this process (clustered when
// n > 1) and returns them; t.Cleanup stops them.
func startServers(t testing.TB, n int) []*server.Server {
	t.Helper()
	var routes []*url.URL
	var ports []int
	if n > 1 {
		var err error
		if ports, err = freeport.Ports(n); err != nil {
			t.Fatalf("reserve ports: %v", err)
		}
		for _, p := range ports {
			routes = append(routes, &url.URL{Scheme: "nats", Host: fmt.Sprintf("127.0.0.1:%d", p)})
		}
	}
	var servers []*server.Server
	for i := range n {
		o := &server.Options{
			ServerName: fmt.Sprintf("n%d", i+1),
			Host:       "127.0.0.1",
			Port:       -1,
			NoLog:      true,
			NoSigs:     true,
			JetStream:  true,
			StoreDir:   t.TempDir(),
		}
		if n > 1 {
			o.Cluster.Name = "ordered"
			o.Cluster.Host = "127.0.0.1"
			o.Cluster.Port = ports[i]
			o.Routes = routes
		}
		s, err := server.NewServer(o)
		if err != nil {
			t.Fatalf("server %d: %v", i+1, err)
		}
		go s.Start()
		servers = append(servers, s)
		t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	}
	for i, s := range servers {
		if !s.ReadyForConnections(10 * time.Second) {
			t.Fatalf("server %d not ready in 10 s", i+1)
		}
	}
	return servers
}

// connect connects to urls (the first preferred) and returns JetStream.
func connect(t testing.TB, urls ...string) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(strings.Join(urls, ","), nats.DontRandomize(), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatalf("connect to %v: %v", urls, err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// createStream creates stream EV on subjects ev.> with r replicas, asking again
// until the cluster has a meta leader that places it.
func createStream(t testing.TB, js jetstream.JetStream, r int) {
	t.Helper()
	deadline := time.Now().Add(guard)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "EV", Subjects: []string{"ev.>"}, Replicas: r})
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("create stream EV: %v", err)
		}
		time.Sleep(100 * time.Millisecond) // polling the cluster's formation, with a deadline
	}
}

// publish publishes body to subject and returns its stream sequence.
func publish(t *testing.T, js jetstream.JetStream, subject, body string) uint64 {
	t.Helper()
	deadline := time.Now().Add(guard)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		ack, err := js.Publish(ctx, subject, []byte(body))
		cancel()
		if err == nil {
			return ack.Sequence
		}
		if time.Now().After(deadline) {
			t.Fatalf("publish %s: %v", subject, err)
		}
	}
}

// receive takes the next message from f and checks its subject, body and
// stream sequence.
func receive(t *testing.T, f *Follower, subject, body string, seq uint64) {
	t.Helper()
	select {
	case m := <-f.C():
		meta, err := m.Metadata()
		if err != nil {
			t.Fatal(err)
		}
		if m.Subject() != subject || string(m.Data()) != body || meta.Sequence.Stream != seq {
			t.Fatalf("received %s %q at sequence %d, want %s %q at %d", m.Subject(), m.Data(), meta.Sequence.Stream, subject, body, seq)
		}
	case <-time.After(guard):
		t.Fatalf("no message within %v, want %s %q at sequence %d (next %d, resets %d)", guard, subject, body, seq, f.Next(), f.Resets())
	}
}

// reports collects what a follower reports.
type reports struct {
	mu   sync.Mutex
	errs []error
	ok   int
}

func (r *reports) report(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err == nil {
		r.ok++
		return
	}
	r.errs = append(r.errs, err)
}

func (r *reports) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return fmt.Sprintf("%d consumers created, errors %v", r.ok, r.errs)
}

func TestFollowInOrder(t *testing.T) {
	s := startServers(t, 1)[0]
	js := connect(t, s.ClientURL())
	createStream(t, js, 1)
	seqs := map[int]uint64{}
	for i := range 40 {
		subj := "ev.a"
		if i%3 == 0 {
			subj = "ev.b"
		}
		seqs[i] = publish(t, js, subj, fmt.Sprint(i))
	}
	if _, err := Follow(js, Config{Stream: "EV", From: 0}); err == nil {
		t.Error("Follow from sequence 0: no error")
	}
	if _, err := Follow(js, Config{From: 1}); err == nil {
		t.Error("Follow without a stream: no error")
	}
	if _, err := Follow(js, Config{Stream: "EV", From: 1, Heartbeat: 100 * time.Millisecond}); err == nil || !strings.Contains(err.Error(), "heartbeat 100ms is not from 500ms to 30s") {
		t.Errorf("Follow with a heartbeat nats.go refuses: %v", err)
	}
	var r reports
	// The longest heartbeat: this test is about order, and a loaded machine (make
	// test beside other work) once kept the client from reading the default 1 s
	// ones for 2 s, and the follower replaced its consumer (TestConsumerServerKilled
	// is the test of missed heartbeats).
	// A consumer that stood still (once, in a whole run of the package with
	// -race: nothing delivered for 5 s, 10 messages waiting) is replaced after
	// Stall, as TestConsumerStalled shows; order is what this test is about.
	var rr replacedReasons
	f, err := Follow(js, Config{Stream: "EV", Subjects: []string{"ev.a"}, From: seqs[10], Buffer: 4, Heartbeat: maxHeartbeat, Report: r.report, Replaced: rr.replaced})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Stop()
	for i := 10; i < 40; i++ {
		if i%3 != 0 {
			receive(t, f, "ev.a", fmt.Sprint(i), seqs[i])
		}
	}
	// Live: published after the consumer caught up.
	s40 := publish(t, js, "ev.b", "40")
	s41 := publish(t, js, "ev.a", "41")
	receive(t, f, "ev.a", "41", s41)
	select {
	case m := <-f.C():
		t.Errorf("a message beyond the last: %s %q", m.Subject(), m.Data())
	default:
	}
	f.Stop()
	if f.Next() != s41+1 || s40 > s41 {
		t.Errorf("Next = %d after the stop, want %d", f.Next(), s41+1)
	}
	f.Stop() // twice: no panic, no wait
	stalls := 0
	for _, why := range rr.get() {
		if why == ReasonStalled {
			stalls++
		}
	}
	if f.Resets() != uint64(stalls) || r.ok != 1+stalls || len(r.errs) != stalls {
		t.Errorf("resets %d, reports: %s; want one consumer, no error (but for stalls, %d)", f.Resets(), &r, stalls)
	}
	if stalls > 0 {
		t.Logf("consumers replaced for a stall: %d (%s)", stalls, &r)
	}
}

// The consumer deleted under the follower (an operator, the server's own
// cleanup): it is replaced from the next sequence, nothing lost or repeated.
func TestConsumerDeleted(t *testing.T) {
	s := startServers(t, 1)[0]
	js := connect(t, s.ClientURL())
	createStream(t, js, 1)
	var r reports
	f, err := Follow(js, Config{Stream: "EV", From: 1, Report: r.report})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Stop()
	var seqs []uint64
	for i := range 5 {
		seqs = append(seqs, publish(t, js, "ev.x", fmt.Sprint(i)))
	}
	for i := range 3 {
		receive(t, f, "ev.x", fmt.Sprint(i), seqs[i])
	}
	ctx, cancel := context.WithTimeout(context.Background(), guard)
	defer cancel()
	st, err := js.Stream(ctx, "EV")
	if err != nil {
		t.Fatal(err)
	}
	if has, _, err := f.Consumer(); !has || err != nil {
		t.Fatalf("Consumer after three messages delivered: %v, %v; want one and no error", has, err)
	}
	deletedAt := time.Now()
	names := st.ConsumerNames(ctx)
	var deleted int
	for name := range names.Name() {
		if err := st.DeleteConsumer(ctx, name); err != nil {
			t.Fatal(err)
		}
		deleted++
	}
	if deleted != 1 {
		t.Fatalf("%d consumers of EV, want the follower's one", deleted)
	}
	for i := 5; i < 9; i++ {
		seqs = append(seqs, publish(t, js, "ev.x", fmt.Sprint(i)))
	}
	for i := 3; i < 9; i++ {
		receive(t, f, "ev.x", fmt.Sprint(i), seqs[i])
	}
	if f.Resets() != 1 {
		t.Errorf("resets %d, want 1 (reports: %s)", f.Resets(), &r)
	}
	if err := f.Err(); err != nil {
		t.Errorf("Err after the replacement delivered: %v", err)
	}
	if has, since, _ := f.Consumer(); !has || since.Before(deletedAt) {
		t.Errorf("Consumer after the replacement delivered: %v since %v, want one since the deletion at %v", has, since, deletedAt)
	}
	r.mu.Lock()
	if len(r.errs) != 1 || !strings.Contains(r.errs[0].Error(), "replaced from sequence") {
		t.Errorf("reports %v, want one replacement", r.errs)
	}
	r.mu.Unlock()
}

// A creation that nobody answers (no JetStream meta leader yet; the consumer
// placed on a server that has just died) is asked again under a new consumer
// name, and the unanswered one deleted; Stop cancels one in flight, whatever
// its wait.
func TestCreateUnanswered(t *testing.T) {
	s := startServers(t, 1)[0]
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	asked := make(chan string, 1024)
	sub, err := nc.Subscribe("SILENT.API.>", func(m *nats.Msg) {
		select {
		case asked <- m.Subject:
		default:
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	js, err := jetstream.NewWithAPIPrefix(nc, "SILENT.API")
	if err != nil {
		t.Fatal(err)
	}
	var r reports
	var logged syncbuf.Buffer
	began := time.Now()
	f, err := Follow(js, Config{Stream: "EV", From: 1, Attempt: 20 * time.Millisecond, Report: r.report, Logger: zerolog.New(&logged)})
	if err != nil {
		t.Fatal(err)
	}
	const create, del = "SILENT.API.CONSUMER.CREATE.EV.", "SILENT.API.CONSUMER.DELETE.EV."
	var creates, deletes []string
	var firstSince time.Time // Consumer's since once the first attempt has failed
	for len(creates) < 3 {
		select {
		case subj := <-asked:
			switch {
			case strings.HasPrefix(subj, create):
				creates = append(creates, strings.TrimPrefix(subj, create))
				if len(creates) == 2 { // the first attempt was given up
					_, firstSince, _ = f.Consumer()
				}
			case strings.HasPrefix(subj, del):
				deletes = append(deletes, strings.TrimPrefix(subj, del))
			default:
				t.Errorf("asked %s", subj)
			}
		case <-time.After(guard):
			f.Stop()
			t.Fatalf("asked to create %v within %v, want 3 attempts", creates, guard)
		}
	}
	if err := f.Err(); err == nil || !strings.Contains(err.Error(), "create consumer") {
		t.Errorf("Err while no consumer can be created: %v", err)
	}
	if has, since, err := f.Consumer(); has || since.Before(began) || !since.Equal(firstSince) || err == nil {
		t.Errorf("Consumer while none can be created: %v since %v (%v), want none since Follow (%v), as after the first failure (%v)", has, since, err, began, firstSince)
	}
	f.Stop()
	if n := strings.Count(logged.String(), "no consumer yet"); n != 1 {
		t.Errorf("the failed attempts logged %d times, want once:\n%s", n, logged.String())
	}
	if creates[0] == creates[1] || creates[1] == creates[2] || creates[0] == creates[2] {
		t.Errorf("attempts %v: want a new consumer name each time", creates)
	}
	// The first two were given up before the third was asked: their deletions
	// were on their way by then.
	for _, name := range creates[:2] {
		for !slices.Contains(deletes, name) {
			select {
			case subj := <-asked:
				if strings.HasPrefix(subj, del) {
					deletes = append(deletes, strings.TrimPrefix(subj, del))
				}
			case <-time.After(guard):
				t.Fatalf("the unanswered consumer %s was not deleted (deletions asked: %v)", name, deletes)
			}
		}
	}
	r.mu.Lock()
	if len(r.errs) < 2 || !strings.Contains(r.errs[0].Error(), "from sequence 1 (waited up to 20ms)") {
		t.Errorf("reports %v, want the failed attempts", r.errs)
	}
	r.mu.Unlock()

	for len(asked) > 0 {
		<-asked
	}
	// An attempt that would wait an hour: Stop ends it.
	f, err = Follow(js, Config{Stream: "EV", From: 1, Attempt: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-asked:
	case <-time.After(guard):
		t.Fatal("no attempt")
	}
	stopped := make(chan struct{})
	go func() {
		f.Stop()
		close(stopped)
	}()
	select {
	case <-stopped:
	case <-time.After(guard):
		t.Fatal("Stop did not return while a creation was in flight")
	}
}

// The server that holds the consumer (one replica) dies: its heartbeats stop and
// the follower creates another consumer on a surviving server, from the next
// sequence.
func TestConsumerServerKilled(t *testing.T) {
	servers := startServers(t, 3)
	urls := []string{servers[0].ClientURL(), servers[1].ClientURL(), servers[2].ClientURL()}
	js := connect(t, urls...)
	createStream(t, js, 3)
	var r reports
	f, err := Follow(js, Config{Stream: "EV", From: 1, Report: r.report})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Stop()
	s1 := publish(t, js, "ev.x", "1")
	receive(t, f, "ev.x", "1", s1)

	ctx, cancel := context.WithTimeout(context.Background(), guard)
	defer cancel()
	st, err := js.Stream(ctx, "EV")
	if err != nil {
		t.Fatal(err)
	}
	var holder string
	for info := range st.ListConsumers(ctx).Info() {
		if info.Cluster != nil {
			holder = info.Cluster.Leader
		}
	}
	var killed int = -1
	for i, s := range servers {
		if s.Name() == holder {
			killed = i
		}
	}
	if killed < 0 {
		t.Fatalf("the consumer's server %q is none of the three", holder)
	}
	servers[killed].Shutdown()
	servers[killed].WaitForShutdown()

	// The stream keeps its quorum on the other two; publish through one of them.
	other := connect(t, urls[(killed+1)%3])
	s2 := publish(t, other, "ev.x", "2")
	s3 := publish(t, other, "ev.x", "3")
	receive(t, f, "ev.x", "2", s2)
	receive(t, f, "ev.x", "3", s3)
	if f.Resets() < 1 {
		t.Errorf("resets %d after the consumer's server died, want at least 1 (%s)", f.Resets(), &r)
	}
	// The reason depends on which server the follower's connection was on:
	// missed heartbeats, or the consumer not found after a reconnection.
	t.Logf("killed %s; reports: %s", holder, &r)
}

// LastPerSubject: each subject's last message first (a KV watcher's current
// values), then every message after; a replacement goes on from there, it does
// not start over with the last per subject.
func TestLastPerSubject(t *testing.T) {
	s := startServers(t, 1)[0]
	js := connect(t, s.ClientURL())
	createStream(t, js, 1)
	publish(t, js, "ev.a", "a1")
	b1 := publish(t, js, "ev.b", "b1")
	a2 := publish(t, js, "ev.a", "a2")
	publish(t, js, "ev.c", "c1") // filtered out
	f, err := Follow(js, Config{Stream: "EV", Subjects: []string{"ev.a", "ev.b"}, LastPerSubject: true})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Stop()
	receive(t, f, "ev.b", "b1", b1)
	receive(t, f, "ev.a", "a2", a2)
	b2 := publish(t, js, "ev.b", "b2")
	receive(t, f, "ev.b", "b2", b2)

	ctx, cancel := context.WithTimeout(context.Background(), guard)
	defer cancel()
	st, err := js.Stream(ctx, "EV")
	if err != nil {
		t.Fatal(err)
	}
	for name := range st.ConsumerNames(ctx).Name() {
		if err := st.DeleteConsumer(ctx, name); err != nil {
			t.Fatal(err)
		}
	}
	a3 := publish(t, js, "ev.a", "a3")
	receive(t, f, "ev.a", "a3", a3)
	if f.Resets() != 1 {
		t.Errorf("resets %d, want 1", f.Resets())
	}
}

// stallProxy stands between a follower and the server, under the API prefix
// STALL.API: it passes every request on to $JS.API, except the pulls of the
// first consumer created, which it gives to a consumer that never has a message
// (its filter matches nothing). That first consumer so answers its pulls with
// idle heartbeats and delivers nothing while the stream fills: what a consumer
// whose server's copy of the stream stopped, the server otherwise up, does.
type stallProxy struct {
	mu       sync.Mutex
	silenced string // the first consumer's name
	creates  []string
	infos    chan struct{} // a stream info asked (not blocking)
}

func startStallProxy(t *testing.T, s *server.Server, js jetstream.JetStream) (*stallProxy, jetstream.JetStream) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), guard)
	defer cancel()
	if _, err := js.CreateOrUpdateConsumer(ctx, "EV", jetstream.ConsumerConfig{Name: "decoy", FilterSubject: "ev.never", AckPolicy: jetstream.AckNonePolicy, InactiveThreshold: time.Minute}); err != nil {
		t.Fatalf("create the decoy consumer: %v", err)
	}
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	p := &stallProxy{infos: make(chan struct{}, 1024)}
	const prefix = "STALL.API."
	if _, err := nc.Subscribe(prefix+">", func(m *nats.Msg) {
		rest := strings.TrimPrefix(m.Subject, prefix)
		p.mu.Lock()
		if name, ok := strings.CutPrefix(rest, "CONSUMER.CREATE.EV."); ok {
			name, _, _ = strings.Cut(name, ".") // a filter may follow the name
			p.creates = append(p.creates, name)
			if p.silenced == "" {
				p.silenced = name
			}
		}
		if p.silenced != "" && rest == "CONSUMER.MSG.NEXT.EV."+p.silenced {
			rest = "CONSUMER.MSG.NEXT.EV.decoy"
		}
		p.mu.Unlock()
		if rest == "STREAM.INFO.EV" {
			select {
			case p.infos <- struct{}{}:
			default:
			}
		}
		_ = nc.PublishMsg(&nats.Msg{Subject: "$JS.API." + rest, Reply: m.Reply, Data: m.Data, Header: m.Header})
	}); err != nil {
		t.Fatal(err)
	}
	return p, proxiedJetStream(t, s, nc, "STALL.API")
}

// proxiedJetStream returns JetStream on a new connection to s whose API
// requests go to prefix, where a proxy subscribed on nc (flushed here, so that
// its subscription is in place) answers or passes them on.
func proxiedJetStream(t *testing.T, s *server.Server, nc *nats.Conn, prefix string) jetstream.JetStream {
	t.Helper()
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	fnc, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fnc.Close)
	fjs, err := jetstream.NewWithAPIPrefix(fnc, prefix)
	if err != nil {
		t.Fatal(err)
	}
	return fjs
}

// replacedReasons collects what Config.Replaced is told.
type replacedReasons struct {
	mu      sync.Mutex
	reasons []string
}

func (r *replacedReasons) replaced(reason string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reasons = append(r.reasons, reason)
}

func (r *replacedReasons) get() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.reasons)
}

// A consumer that keeps sending idle heartbeats and delivers nothing while the
// stream's leader holds messages it should deliver (docs/cluster.md, Known
// gaps: an applier that stood still for more than 90 s with another node's
// store read-only) is replaced after Config.Stall, from the next sequence, and
// the replacement is told as "stalled". Before 6 December 2026 heartbeats kept
// it, and the follower delivered nothing for ever. With Subjects, the leader is
// asked for the subjects' last messages (a wildcard among them).
func TestConsumerStalled(t *testing.T) {
	for _, subjects := range [][]string{nil, {"ev.*"}, {"ev.a", "ev.b"}} {
		t.Run(fmt.Sprint(subjects), func(t *testing.T) {
			s := startServers(t, 1)[0]
			js := connect(t, s.ClientURL())
			createStream(t, js, 1)
			p, fjs := startStallProxy(t, s, js)
			publish(t, js, "ev.other", "x") // outside the filters
			s1 := publish(t, js, "ev.a", "1")
			var r reports
			var rr replacedReasons
			var logged syncbuf.Buffer
			began := time.Now()
			f, err := Follow(fjs, Config{Stream: "EV", Subjects: subjects, From: s1, Stall: time.Second, Report: r.report, Replaced: rr.replaced, Logger: zerolog.New(&logged)})
			if err != nil {
				t.Fatal(err)
			}
			defer f.Stop()
			s2 := publish(t, js, "ev.b", "2")
			receive(t, f, "ev.a", "1", s1)
			receive(t, f, "ev.b", "2", s2)
			took := time.Since(began)
			s3 := publish(t, js, "ev.a", "3")
			receive(t, f, "ev.a", "3", s3)
			if got := rr.get(); !slices.Equal(got, []string{ReasonStalled}) {
				t.Errorf("replaced for %v, want once for a stall (reports: %s)", got, &r)
			}
			if f.Resets() != 1 {
				t.Errorf("resets %d, want 1", f.Resets())
			}
			r.mu.Lock()
			if len(r.errs) != 1 || !strings.Contains(r.errs[0].Error(), fmt.Sprintf("replaced from sequence %d: %v", s1, ErrStalled)) ||
				!strings.Contains(r.errs[0].Error(), fmt.Sprintf("the last sequence delivered %d, the stream's leader holding %d", s1-1, s2)) {
				t.Errorf("reports %v, want one replacement for a stall, with its sequences", r.errs)
			}
			r.mu.Unlock()
			if !strings.Contains(logged.String(), "ordered: consumer replaced") || !strings.Contains(logged.String(), ErrStalled.Error()) {
				t.Errorf("the replacement not logged with its reason:\n%s", logged.String())
			}
			p.mu.Lock()
			t.Logf("first messages after %v; consumers asked for: %v", took.Round(time.Millisecond), p.creates)
			p.mu.Unlock()
		})
	}
}

// A follower that has delivered everything the stream holds keeps its
// consumer, however long the stream stays idle: it asks the stream's leader,
// and the leader holds nothing it wants.
func TestIdleNotStalled(t *testing.T) {
	s := startServers(t, 1)[0]
	js := connect(t, s.ClientURL())
	createStream(t, js, 1)
	p, fjs := startStallProxy(t, s, js)
	p.mu.Lock()
	p.silenced = "none" // every consumer delivers
	p.mu.Unlock()
	s1 := publish(t, js, "ev.a", "1")
	var rr replacedReasons
	f, err := Follow(fjs, Config{Stream: "EV", From: 1, Stall: time.Second, Replaced: rr.replaced})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Stop()
	receive(t, f, "ev.a", "1", s1)
	for len(p.infos) > 0 {
		<-p.infos
	}
	// Four stall checks, 2 s idle at least: twice the stall.
	for range 4 {
		select {
		case <-p.infos:
		case <-time.After(guard):
			t.Fatal("the idle follower did not ask the stream's leader")
		}
	}
	if got := rr.get(); len(got) != 0 || f.Resets() != 0 {
		t.Errorf("an idle follower's consumer replaced: %v (resets %d)", got, f.Resets())
	}
	s2 := publish(t, js, "ev.a", "2")
	receive(t, f, "ev.a", "2", s2)
}

// A stalled consumer is replaced within Stall to 1.5×Stall of its last message
// (here, of its creation: it never delivers), plus one question to the leader,
// with the Stall the journal's applier uses (1.5 s, cjournal's applierStall): the
// messages it owed arrive well within the 5 s a request on the node waits for the
// applier (cjournal's AckTimeout). With the former 5 s, a consumer on a server
// whose store turned read-only was replaced after 5.4 to 7.4 s, and requests
// waiting on it were answered 91 (docs/cluster.md, Known gaps).
func TestConsumerStalledBound(t *testing.T) {
	const stall = 1500 * time.Millisecond
	s := startServers(t, 1)[0]
	js := connect(t, s.ClientURL())
	createStream(t, js, 1)
	_, fjs := startStallProxy(t, s, js)
	s1 := publish(t, js, "ev.a", "1")
	var mu sync.Mutex
	var created, replaced time.Time // the first consumer's creation, its replacement
	report := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		switch {
		case err == nil && created.IsZero():
			created = time.Now()
		case err != nil && replaced.IsZero():
			replaced = time.Now()
		}
	}
	f, err := Follow(fjs, Config{Stream: "EV", From: s1, Stall: stall, Report: report})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Stop()
	receive(t, f, "ev.a", "1", s1)
	got := time.Now()
	mu.Lock()
	silent, total := replaced.Sub(created), got.Sub(created)
	mu.Unlock()
	t.Logf("replaced after %v of silence, the message received %v after the first consumer's creation", silent.Round(time.Millisecond), total.Round(time.Millisecond))
	if f.Resets() != 1 {
		t.Errorf("resets %d, want 1", f.Resets())
	}
	if silent < stall || silent > stall*3/2+500*time.Millisecond {
		t.Errorf("the stalled consumer replaced after %v of silence, want %v to %v (1.5×Stall and a question to the leader)", silent, stall, stall*3/2+500*time.Millisecond)
	}
	if total > 3500*time.Millisecond {
		t.Errorf("the message owed received %v after the stalled consumer's creation, want within 3.5 s (a request waits 5 s)", total)
	}
}

// A receiver that takes messages slowly, leaving C full for longer than Stall
// while the stream's leader holds more, does not get its consumer replaced: the
// consumer is not silent, the receiver is behind. The follower does not even ask
// the leader meanwhile. Its consumer is kept, and every message arrives once, in
// order.
func TestSlowReceiverNotStalled(t *testing.T) {
	const stall = time.Second
	s := startServers(t, 1)[0]
	js := connect(t, s.ClientURL())
	createStream(t, js, 1)
	p, fjs := startStallProxy(t, s, js)
	p.mu.Lock()
	p.silenced = "none" // every consumer delivers
	p.mu.Unlock()
	var seqs []uint64
	for i := range 8 {
		seqs = append(seqs, publish(t, js, "ev.a", fmt.Sprint(i)))
	}
	var rr replacedReasons
	var r reports
	f, err := Follow(fjs, Config{Stream: "EV", From: 1, Stall: stall, Buffer: 2, Replaced: rr.replaced, Report: r.report})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Stop()
	for len(p.infos) > 0 {
		<-p.infos
	}
	// The receiver behind: it takes nothing for twice Stall (C full, the
	// follower's handler waiting for room, the leader holding six more), then
	// takes three messages with longer than Stall of processing after each.
	// These waits are the slowness under test, not a synchronization.
	<-time.After(2 * stall)
	if n := len(p.infos); n != 0 {
		t.Errorf("the follower asked the stream's leader %d times while its receiver was behind, want none", n)
	}
	for i, seq := range seqs {
		receive(t, f, "ev.a", fmt.Sprint(i), seq)
		if i < 3 {
			<-time.After(stall * 6 / 5)
		}
	}
	if got := rr.get(); len(got) != 0 || f.Resets() != 0 {
		t.Errorf("a slow receiver's consumer replaced: %v (resets %d; reports: %s)", got, f.Resets(), &r)
	}
}

// holdProxy is an API prefix (HOLD.API) that passes every JetStream API request
// on to the server, except, as its mode says, a consumer's creation and the
// API's message get: refused at once with 503, as every server refuses them
// once it knows it has no meta leader (refuseGets: the message gets too), or
// the creations held until release (a creation nobody answers).
type holdProxy struct {
	nc         *nats.Conn
	mu         sync.Mutex
	held       []*nats.Msg
	mode       string // "refuse", "hold" or "pass"
	refuseGets bool
	gets       int // message gets asked (not direct gets)
}

func startHoldProxy(t *testing.T, s *server.Server, refuseGets bool) (*holdProxy, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	p := &holdProxy{nc: nc, mode: "refuse", refuseGets: refuseGets}
	const prefix = "HOLD.API."
	const unavailable = `{"type":"io.nats.jetstream.api.v1.%s","error":{"code":503,"err_code":10008,"description":"JetStream system temporarily unavailable"}}`
	if _, err := nc.Subscribe(prefix+">", func(m *nats.Msg) {
		fwd := &nats.Msg{Subject: "$JS.API." + strings.TrimPrefix(m.Subject, prefix), Reply: m.Reply, Data: m.Data, Header: m.Header}
		create := strings.HasPrefix(fwd.Subject, "$JS.API.CONSUMER.CREATE.")
		get := strings.HasPrefix(fwd.Subject, "$JS.API.STREAM.MSG.GET.")
		p.mu.Lock()
		if get {
			p.gets++
		}
		switch {
		case p.mode == "refuse" && create:
			p.mu.Unlock()
			_ = nc.Publish(m.Reply, fmt.Appendf(nil, unavailable, "consumer_create_response"))
			return
		case p.mode == "refuse" && get && p.refuseGets:
			p.mu.Unlock()
			_ = nc.Publish(m.Reply, fmt.Appendf(nil, unavailable, "stream_msg_get_response"))
			return
		case p.mode == "hold" && create:
			p.held = append(p.held, fwd)
			p.mu.Unlock()
			return
		}
		p.mu.Unlock()
		_ = nc.PublishMsg(fwd)
	}); err != nil {
		t.Fatal(err)
	}
	return p, proxiedJetStream(t, s, nc, "HOLD.API")
}

func (p *holdProxy) setMode(mode string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.mode = mode
}

func (p *holdProxy) heldCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.held)
}

// release passes the creations held on, and those asked from now on.
func (p *holdProxy) release() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.mode = "pass"
	for _, m := range p.held {
		_ = p.nc.PublishMsg(m)
	}
	return len(p.held)
}

// waitFor polls cond, a follower's or the proxy's state, until it holds.
func waitFor(t *testing.T, what string, cond func() bool, detail ...func() string) {
	t.Helper()
	deadline := time.Now().Add(guard)
	for !cond() {
		if time.Now().After(deadline) {
			for _, d := range detail {
				what += "; " + d()
			}
			t.Fatalf("not within %v: %s", guard, what)
		}
		time.Sleep(10 * time.Millisecond) // polling, with a deadline
	}
}

// While no consumer can be created (docs/cluster.md, Known gaps: a journal
// applier whose successor consumer waited 6 to 15 s for a meta leader stood
// still meanwhile, and its node answered 91), the follower reads the stream's
// messages itself and delivers them in order: while creations are refused at
// once (503, as servers that know they have no meta leader answer them), and
// while one goes unanswered. It reads them by direct get where the stream
// allows them (the API's message get, which such servers refuse too, is not
// asked), else by message get. The consumer created at last (from the
// sequence its creation asked for) skips them, and nothing is delivered twice.
// With one subject, only its messages are read; with several, none (two reads
// could pass over a message).
func TestCreationUnansweredReadsLeader(t *testing.T) {
	for _, direct := range []bool{true, false} {
		t.Run(fmt.Sprintf("direct=%v", direct), func(t *testing.T) {
			s := startServers(t, 1)[0]
			js := connect(t, s.ClientURL())
			createStream(t, js, 1)
			ctx, cancel := context.WithTimeout(context.Background(), guard)
			defer cancel()
			if _, err := js.UpdateStream(ctx, jetstream.StreamConfig{Name: "EV", Subjects: []string{"ev.>"}, AllowDirect: direct}); err != nil {
				t.Fatal(err)
			}
			publish(t, js, "ev.a", "1")
			publish(t, js, "ev.b", "2")
			p, fjs := startHoldProxy(t, s, direct)
			var logged syncbuf.Buffer
			all, err := Follow(fjs, Config{Stream: "EV", From: 1, Attempt: time.Hour, Logger: zerolog.New(&logged)})
			if err != nil {
				t.Fatal(err)
			}
			defer all.Stop()
			onlyB, err := Follow(fjs, Config{Stream: "EV", Subjects: []string{"ev.b"}, From: 1, Attempt: time.Hour})
			if err != nil {
				t.Fatal(err)
			}
			defer onlyB.Stop()
			// Several subjects: not read without a consumer (two reads could
			// pass over a message), delivered once it has one.
			several, err := Follow(fjs, Config{Stream: "EV", Subjects: []string{"ev.a", "ev.b"}, From: 1, Attempt: time.Hour})
			if err != nil {
				t.Fatal(err)
			}
			defer several.Stop()
			both := []*Follower{all, onlyB}

			// Creations refused.
			receive(t, all, "ev.a", "1", 1)
			receive(t, all, "ev.b", "2", 2)
			receive(t, onlyB, "ev.b", "2", 2)
			publish(t, js, "ev.a", "3")
			publish(t, js, "ev.b", "4")
			receive(t, all, "ev.a", "3", 3)
			receive(t, all, "ev.b", "4", 4)
			receive(t, onlyB, "ev.b", "4", 4)

			// A creation unanswered.
			p.setMode("hold")
			waitFor(t, "each follower's creation held", func() bool { return p.heldCount() >= 3 })
			publish(t, js, "ev.a", "5")
			publish(t, js, "ev.b", "6")
			receive(t, all, "ev.a", "5", 5)
			receive(t, all, "ev.b", "6", 6)
			receive(t, onlyB, "ev.b", "6", 6)
			for _, f := range both {
				if has, _, _ := f.Consumer(); has {
					t.Fatal("a consumer exists while creations are refused or held")
				}
			}
			if all.Bridged() != 6 || onlyB.Bridged() != 3 {
				t.Fatalf("read without a consumer: %d and %d messages, want 6 and 3", all.Bridged(), onlyB.Bridged())
			}
			if !strings.Contains(logged.String(), "reading the stream's messages meanwhile") {
				t.Errorf("not logged:\n%s", logged.String())
			}
			p.mu.Lock()
			gets := p.gets
			p.mu.Unlock()
			if direct && gets != 0 {
				t.Errorf("%d message gets asked of a stream that allows direct gets", gets)
			}

			// The held creations answered: each consumer starts at the sequence its
			// creation asked for, and skips what was read meanwhile.
			if several.Bridged() != 0 || len(several.C()) != 0 {
				t.Fatalf("the follower of two subjects read %d without a consumer (%d in C), want none", several.Bridged(), len(several.C()))
			}
			if n := p.release(); n != 3 {
				t.Fatalf("%d creations held, want 3 (one a follower)", n)
			}
			for _, f := range append(both, several) {
				waitFor(t, "a consumer after the creations' release", func() bool { has, _, _ := f.Consumer(); return has })
			}
			publish(t, js, "ev.a", "7")
			publish(t, js, "ev.b", "8")
			receive(t, all, "ev.a", "7", 7)
			receive(t, all, "ev.b", "8", 8)
			receive(t, onlyB, "ev.b", "8", 8)
			for i, subj := range []string{"ev.a", "ev.b", "ev.a", "ev.b", "ev.a", "ev.b", "ev.a", "ev.b"} {
				receive(t, several, subj, fmt.Sprint(i+1), uint64(i+1))
			}
			if all.Bridged() != 6 || onlyB.Bridged() != 3 || all.Resets() != 0 || onlyB.Resets() != 0 {
				t.Fatalf("after the consumers: read without one %d and %d, resets %d and %d; want 6, 3, 0, 0",
					all.Bridged(), onlyB.Bridged(), all.Resets(), onlyB.Resets())
			}
		})
	}
}

// The meta leader's server dies, the stream's group keeps its leader: a
// follower started then (as a journal applier replaces its consumer) reads the
// stream's messages by direct get from its own server's replica while its
// creation goes unanswered (while the meta group elects), then takes its
// consumer and goes on, nothing delivered twice.
func TestMetaLeaderLostReadsStream(t *testing.T) {
	servers := startServers(t, 3)
	urls := []string{servers[0].ClientURL(), servers[1].ClientURL(), servers[2].ClientURL()}
	js := connect(t, urls...)
	createStream(t, js, 3)
	ctx, cancel := context.WithTimeout(context.Background(), guard)
	defer cancel()
	if _, err := js.UpdateStream(ctx, jetstream.StreamConfig{Name: "EV", Subjects: []string{"ev.>"}, Replicas: 3, AllowDirect: true}); err != nil {
		t.Fatal(err)
	}
	// A meta leader, and the stream's leader on another server.
	meta := -1
	var last string
	waitFor(t, "a meta leader, and the stream's leader on another server", func() bool {
		meta = -1
		for i, s := range servers {
			if s.JetStreamIsLeader() {
				meta = i
			}
		}
		ictx, icancel := context.WithTimeout(ctx, 2*time.Second)
		st, err := js.Stream(ictx, "EV")
		icancel()
		if meta < 0 || err != nil || st.CachedInfo().Cluster == nil || st.CachedInfo().Cluster.Leader == "" {
			last = fmt.Sprintf("meta leader %d, stream info %v", meta, err)
			return false
		}
		leader := st.CachedInfo().Cluster.Leader
		if leader != servers[meta].Name() {
			return true
		}
		req := fmt.Sprintf(`{"placement":{"preferred":%q}}`, servers[(meta+1)%3].Name())
		m, err := js.Conn().Request("$JS.API.STREAM.LEADER.STEPDOWN.EV", []byte(req), 2*time.Second)
		last = fmt.Sprintf("stream leader %s on the meta leader's server; step-down: %v", leader, err)
		if m != nil {
			last += " " + string(m.Data)
		}
		return false
	}, func() string { return last })
	t.Logf("meta leader %s; %s", servers[meta].Name(), last)
	s1 := publish(t, js, "ev.a", "1")
	survivor := (meta + 1) % 3
	fjs := connect(t, urls[survivor])
	servers[meta].Shutdown()
	servers[meta].WaitForShutdown()

	var logged syncbuf.Buffer
	f, err := Follow(fjs, Config{Stream: "EV", From: 1, Logger: zerolog.New(&logged)})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Stop()
	s2 := publish(t, fjs, "ev.b", "2")
	receive(t, f, "ev.a", "1", s1)
	receive(t, f, "ev.b", "2", s2)
	// The meta group usually elects for 3 s or more (its followers' election
	// timeouts, 4 to 9 s from the last heartbeat); in 2 of 6 runs under -race a
	// new meta leader answered the creation at once. Then the reads are not
	// exercised here (TestCreationUnansweredReadsLeader does so
	// deterministically), only the delivery across the loss.
	if has, since, _ := f.Consumer(); !has && f.Bridged() != 2 {
		t.Fatalf("%d messages read without a consumer (none since %v), want 2", f.Bridged(), since)
	} else if has && f.Bridged() == 0 {
		t.Logf("a new meta leader answered the first creation: nothing read without a consumer")
	}
	waitFor(t, "a consumer once the meta group elected", func() bool { has, _, _ := f.Consumer(); return has })
	s3 := publish(t, fjs, "ev.a", "3")
	receive(t, f, "ev.a", "3", s3)
	select {
	case m := <-f.C():
		meta, _ := m.Metadata()
		t.Fatalf("delivered more: %s at %d", m.Subject(), meta.Sequence.Stream)
	default:
	}
	t.Logf("meta leader %s killed; %d read without a consumer; log: %s", servers[meta].Name(), f.Bridged(), logged.String())
}
