package hsm_test

import (
	"context"
	"encoding/hex"
	"sync"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/switchyard/switchyard/hsm"
	"github.com/switchyard/switchyard/keys"
)

// clock is a settable time source shared by the store and the HSM.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type env struct {
	t     testing.TB
	dir   string
	db    *badger.DB
	store *keys.Store
	hsm   *hsm.Software
	clock *clock
	ctx   context.Context
}

func openDB(t testing.TB, dir string) *badger.DB {
	t.Helper()
	db, err := badger.Open(badger.DefaultOptions(dir).WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	return db
}

// newEnv opens a real Badger DB in a temporary directory with a demo-mode store and
// a software HSM under the demo LMK, loaded with the demo keys.
func newEnv(t testing.TB, opts hsm.Options) *env {
	t.Helper()
	e := &env{t: t, dir: t.TempDir(), clock: &clock{t: time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)}, ctx: hsm.WithActor(context.Background(), "test")}
	e.open(opts)
	if err := keys.LoadDemo(e.ctx, e.store, e.hsm); err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *env) open(opts hsm.Options) {
	e.t.Helper()
	e.db = openDB(e.t, e.dir)
	e.t.Cleanup(func() { e.db.Close() })
	var err error
	e.store, err = keys.NewStore(e.db, keys.Options{Demo: true, Now: e.clock.Now})
	if err != nil {
		e.t.Fatal(err)
	}
	opts.Now = e.clock.Now
	e.hsm, err = hsm.NewSoftware(e.ctx, e.store, keys.DemoLMK(), opts)
	if err != nil {
		e.t.Fatal(err)
	}
}

// reopen closes and reopens the DB, store and HSM (persistence checks).
func (e *env) reopen(opts hsm.Options) {
	e.t.Helper()
	if err := e.db.Close(); err != nil {
		e.t.Fatal(err)
	}
	e.open(opts)
}

func hx(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// form stores a key of known value (two components) and returns its handle.
func (e *env) form(spec hsm.KeySpec, keyHex string) hsm.KeyRef {
	e.t.Helper()
	return e.formKey(hsm.FormKeyRequest{KeySpec: spec}, keyHex)
}

// formShared is form for a value the store may hold under another key ID already
// (FormKeyRequest.AllowStoredValue): a published test key that is a demo key's too.
func (e *env) formShared(spec hsm.KeySpec, keyHex string) hsm.KeyRef {
	e.t.Helper()
	return e.formKey(hsm.FormKeyRequest{KeySpec: spec, AllowStoredValue: true}, keyHex)
}

func (e *env) formKey(req hsm.FormKeyRequest, keyHex string) hsm.KeyRef {
	e.t.Helper()
	key := hx(e.t, keyHex)
	c1 := make([]byte, len(key))
	for i := range c1 {
		c1[i] = byte(i*37 + 11)
	}
	c2 := make([]byte, len(key))
	for i := range c2 {
		c2[i] = key[i] ^ c1[i]
	}
	req.Components = [][]byte{c1, c2}
	res, err := e.hsm.FormKey(e.ctx, req)
	if err != nil {
		e.t.Fatal(err)
	}
	return res.Ref
}
