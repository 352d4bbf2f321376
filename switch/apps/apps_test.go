package apps

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/dgraph-io/badger/v4"
	"github.com/rs/zerolog"

	"github.com/switchyard/switchyard/internal/syncbuf"
	"github.com/switchyard/switchyard/switch/registry"
)

var (
	alice = registry.Actor{Name: "alice", Role: registry.RoleOperator}
	bob   = registry.Actor{Name: "bob", Role: registry.RoleReviewer}
	t0    = time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

type fixture struct {
	t     *testing.T
	dir   string
	chk   []byte          // the card hash key New is given
	logs  *syncbuf.Buffer // what the Manager logs
	tweak func(*Options)
	db    *badger.DB
	reg   *registry.Registry
	m     *Manager
	clock *clock
	priv  ed25519.PrivateKey
	tids  []string
	// changesHook, when set, runs after each ApprovedChanges call the Manager
	// makes to the registry (hookedRegistry): in a Refresh, once it read the
	// approved changes and before it resolves the groups and puts them in place.
	changesHook atomic.Pointer[func()]
}

// hookedRegistry is the fixture's registry as the Manager sees it:
// ApprovedChanges runs the fixture's changesHook once it has read the changes.
type hookedRegistry struct {
	*registry.Registry
	f *fixture
}

func (h hookedRegistry) ApprovedChanges(ops ...registry.Op) ([]*registry.Change, error) {
	cs, err := h.Registry.ApprovedChanges(ops...)
	if fn := h.f.changesHook.Load(); fn != nil {
		(*fn)()
	}
	return cs, err
}

const mid = "M00000000000001"

// newFixture opens a registry with one merchant and n active terminals (model
// A920, kind pos) and a Manager with an approved Ed25519 signing key "acq-1".
func newFixture(t *testing.T, n int) *fixture {
	t.Helper()
	f := &fixture{t: t, dir: t.TempDir(), clock: &clock{t: t0}, chk: []byte("0123456789abcdef0123456789abcdef"), logs: &syncbuf.Buffer{}}
	f.open()
	t.Cleanup(f.close)
	f.approve(f.reg.RequestChange(alice, registry.Change{Op: registry.OpMerchantRegister, Merchant: &registry.Merchant{
		ID: mid, Name: "Shop", MCC: "5411", Region: "north", Tier: "standard", Rating: "low"}}))
	var ts []registry.Terminal
	for i := range n {
		tid := fmt.Sprintf("T%07d", i)
		f.tids = append(f.tids, tid)
		ts = append(ts, registry.Terminal{ID: tid, MerchantID: mid, Kind: registry.KindPOS, Model: "A920", Status: registry.TerminalActive})
	}
	if n > 0 {
		f.approve(f.reg.RequestChange(alice, registry.Change{Op: registry.OpTerminalImport, Terminals: ts}))
	}
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	f.priv = priv
	f.approve(f.m.RequestKey(alice, KeyRequest{SigningKey: SigningKey{ID: "acq-1", PublicKey: pemKey(t, pub)}}))
	return f
}

func (f *fixture) open() {
	f.t.Helper()
	if err := f.tryOpen(); err != nil {
		f.t.Fatal(err)
	}
}

// tryOpen opens the database, the registry and the Manager; when New fails, the
// database and the registry are closed again.
func (f *fixture) tryOpen() error {
	db, err := badger.Open(badger.DefaultOptions(f.dir + "/db").WithLogger(nil).WithMemTableSize(8 << 20).WithValueLogFileSize(16 << 20))
	if err != nil {
		return err
	}
	f.db = db
	if f.reg, err = registry.New(db, f.clock.Now, registry.Options{SeenFlushInterval: -1}); err != nil {
		db.Close()
		return err
	}
	o := Options{Dir: f.dir + "/apps", Now: f.clock.Now, CardHashKey: f.chk, Logger: zerolog.New(f.logs)}
	if f.tweak != nil {
		f.tweak(&o)
	}
	if f.m, err = New(db, hookedRegistry{f.reg, f}, o); err != nil {
		f.close()
		return err
	}
	return nil
}

func (f *fixture) close() {
	if f.reg != nil {
		f.reg.Close()
		f.db.Close()
		f.reg = nil
	}
}

func (f *fixture) approve(c *registry.Change, err error) *registry.Change {
	f.t.Helper()
	if err != nil {
		f.t.Fatalf("request: %v", err)
	}
	c, err = f.reg.Approve(bob, c.ID, "ok")
	if err != nil {
		f.t.Fatalf("approve %s: %v", c.Op, err)
	}
	return c
}

func pemKey(t *testing.T, pub any) string {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

func blob(version string, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + len(version))
	}
	return append([]byte("APP "+version+"\n"), b...)
}

// upload signs and uploads data as demo-pay@version for kind pos.
func (f *fixture) upload(version string, data []byte) *Package {
	f.t.Helper()
	p, err := f.m.Upload(alice, f.signed(version, data), bytes.NewReader(data))
	if err != nil {
		f.t.Fatalf("upload %s: %v", version, err)
	}
	return p
}

func (f *fixture) signed(version string, data []byte) UploadRequest {
	sum := sha256.Sum256(data)
	st := Statement("demo-pay", version, hex.EncodeToString(sum[:]), int64(len(data)), nil, []string{"pos"})
	return UploadRequest{Name: "demo-pay", Version: version, Kinds: []string{"pos"}, KeyID: "acq-1",
		Signature: base64.StdEncoding.EncodeToString(ed25519.Sign(f.priv, st))}
}

func (f *fixture) publish(group, version string, pct float64, min string) {
	f.t.Helper()
	f.approve(f.m.RequestPublish(alice, PublishRequest{Group: group, App: "demo-pay", Version: version,
		Target: Target{Merchants: []string{mid}, Percent: pct}, MinVersion: min}))
}

// offerOf parses an UP value.
func offerOf(t *testing.T, v string) (version, sum, token string) {
	t.Helper()
	parts := strings.SplitN(v, ":", 4)
	if len(parts) != 4 {
		t.Fatalf("UP %q: want VERSION:SIZE:SHA256:TOKEN", v)
	}
	return parts[0], parts[2], parts[3]
}

func TestPublishedToTenPercentReachesExactlyThatShare(t *testing.T) {
	f := newFixture(t, 200)
	f.upload("2.0", blob("2.0", 1000))
	f.publish("north", "2.0", 10, "")
	offered := f.m.Offered("north")
	if len(offered) != 20 {
		t.Fatalf("10%% of 200 terminals: %d offered, want exactly 20", len(offered))
	}
	got := 0
	for _, tid := range f.tids {
		if v := f.m.Offer(tid, "", "1.0", f.clock.Now()); v != "" {
			got++
			if !slices.Contains(offered, tid) {
				t.Errorf("%s got an offer but is not in the 10%%", tid)
			}
		}
	}
	if got != 20 {
		t.Fatalf("%d terminals got an UP offer at echo, want 20", got)
	}
	// Deterministic: the same terminals after a restart; a wider share keeps them.
	f.close()
	f.open()
	if again := f.m.Offered("north"); !slices.Equal(again, offered) {
		t.Fatalf("after a restart the 10%% is %v, was %v", again, offered)
	}
	f.publish("north", "2.0", 30, "")
	wider := f.m.Offered("north")
	if len(wider) != 60 {
		t.Fatalf("30%%: %d offered, want 60", len(wider))
	}
	for _, tid := range offered {
		if !slices.Contains(wider, tid) {
			t.Errorf("%s was in the 10%% but not in the 30%%", tid)
		}
	}
	// A terminal already on the release is offered nothing.
	if v := f.m.Offer(offered[0], "", "2.0", f.clock.Now()); v != "" {
		t.Errorf("terminal on 2.0 offered %q", v)
	}
}

func TestAlteredOrUnsignedPackageRefusedAtUpload(t *testing.T) {
	f := newFixture(t, 0)
	data := blob("2.0", 5000)
	req := f.signed("2.0", data)
	altered := bytes.Clone(data)
	altered[100] ^= 1
	_, err := f.m.Upload(alice, req, bytes.NewReader(altered))
	if !errors.Is(err, registry.ErrInvalid) || !strings.Contains(err.Error(), "signature") {
		t.Fatalf("altered package: err %v, want an invalid signature", err)
	}
	sum := sha256.Sum256(data)
	req.SHA256 = hex.EncodeToString(sum[:])
	if _, err := f.m.Upload(alice, req, bytes.NewReader(data[:4000])); !errors.Is(err, registry.ErrInvalid) || !strings.Contains(err.Error(), "truncated") {
		t.Fatalf("truncated package: err %v", err)
	}
	unsigned := req
	unsigned.Signature = ""
	if _, err := f.m.Upload(alice, unsigned, bytes.NewReader(data)); !errors.Is(err, registry.ErrInvalid) {
		t.Fatalf("unsigned package: err %v", err)
	}
	unknown := req
	unknown.KeyID = "nobody"
	if _, err := f.m.Upload(alice, unknown, bytes.NewReader(data)); !errors.Is(err, registry.ErrInvalid) {
		t.Fatalf("unknown key: err %v", err)
	}
	// A package name holding a card number, glued to letters or not, is refused,
	// quoted masked.
	carded := f.signed("2.0", data)
	carded.Name = "pay4761739001010119"
	if _, err := f.m.Upload(alice, carded, bytes.NewReader(data)); !errors.Is(err, registry.ErrInvalid) || !strings.Contains(err.Error(), `"pay476173******0119"`) {
		t.Fatalf("a name holding a card number: err %v", err)
	}
	// An empty blob, even validly signed, is no package.
	empty := f.signed("2.1", nil)
	if _, err := f.m.Upload(alice, empty, bytes.NewReader(nil)); !errors.Is(err, registry.ErrInvalid) || !strings.Contains(err.Error(), "empty") {
		t.Fatalf("empty package: err %v, want it refused as empty", err)
	}
	if ps := f.m.Packages(); len(ps) != 0 {
		t.Fatalf("refused uploads left packages: %v", ps)
	}
	ents, _ := os.ReadDir(f.dir + "/apps/sha256")
	if len(ents) != 0 {
		t.Fatalf("refused uploads left files: %v", ents)
	}
	// The genuine one is taken; the same version with other bytes is not.
	f.upload("2.0", data)
	other := blob("2.0", 5001)
	if _, err := f.m.Upload(alice, f.signed("2.0", other), bytes.NewReader(other)); !errors.Is(err, registry.ErrConflict) {
		t.Fatalf("other bytes under a stored version: err %v", err)
	}
}

func TestECDSAKeySignsToo(t *testing.T) {
	f := newFixture(t, 0)
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	f.approve(f.m.RequestKey(alice, KeyRequest{SigningKey: SigningKey{ID: "acq-ec", PublicKey: pemKey(t, &k.PublicKey)}}))
	data := blob("3.1", 300)
	sum := sha256.Sum256(data)
	h := sha256.Sum256(Statement("demo-pay", "3.1", hex.EncodeToString(sum[:]), int64(len(data)), nil, nil))
	sig, _ := ecdsa.SignASN1(rand.Reader, k, h[:])
	req := UploadRequest{Name: "demo-pay", Version: "3.1", KeyID: "acq-ec", Signature: base64.StdEncoding.EncodeToString(sig)}
	if _, err := f.m.Upload(alice, req, bytes.NewReader(data)); err != nil {
		t.Fatalf("ECDSA-signed upload: %v", err)
	}
}

// get downloads with the token, with an optional Range header.
func get(t *testing.T, srv *httptest.Server, tid, sum, token, rng string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest("GET", srv.URL+"/apps/v1/download/"+tid+"/"+sum, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	if rng != "" {
		req.Header.Set("Range", rng)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func TestDownloadInterruptedAndResumedYieldsTheHash(t *testing.T) {
	f := newFixture(t, 5)
	data := blob("2.0", 300_000)
	p := f.upload("2.0", data)
	f.publish("north", "2.0", 100, "")
	srv := httptest.NewTLSServer(f.m.Handler())
	defer srv.Close()
	tid := f.tids[0]
	_, sum, tok := offerOf(t, f.m.Offer(tid, "", "1.0", f.clock.Now()))
	if sum != p.SHA256 {
		t.Fatalf("offer names %s, package is %s", sum, p.SHA256)
	}
	// The first attempt breaks off after 100000 bytes.
	resp := get(t, srv, tid, sum, tok, "")
	if resp.StatusCode != 200 {
		t.Fatalf("download: %s", resp.Status)
	}
	part, err := io.ReadAll(io.LimitReader(resp.Body, 100_000))
	resp.Body.Close()
	if err != nil || len(part) != 100_000 {
		t.Fatalf("first part: %d bytes, %v", len(part), err)
	}
	// The resume asks for the rest, checking that the package is the same one.
	req, _ := http.NewRequest("GET", srv.URL+"/apps/v1/download/"+tid+"/"+sum, nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Range", fmt.Sprintf("bytes=%d-", len(part)))
	req.Header.Set("If-Range", `"`+sum+`"`)
	resp, err = srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	rest, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusPartialContent {
		t.Fatalf("resume: %s, want 206", resp.Status)
	}
	got := sha256.Sum256(append(part, rest...))
	if hex.EncodeToString(got[:]) != sum {
		t.Fatalf("resumed download hashes to %x, want %s", got, sum)
	}
	// Another terminal's token, or a bad one, is refused.
	if r := get(t, srv, f.tids[1], sum, tok, ""); r.StatusCode != 401 {
		t.Fatalf("token of %s used by %s: %s, want 401", tid, f.tids[1], r.Status)
	}
	if r := get(t, srv, tid, sum, "1.AAAA", ""); r.StatusCode != 401 {
		t.Fatalf("forged token: %s, want 401", r.Status)
	}
	// Expired.
	f.clock.mu.Lock()
	f.clock.t = f.clock.t.Add(25 * time.Hour)
	f.clock.mu.Unlock()
	if r := get(t, srv, tid, sum, tok, ""); r.StatusCode != 401 {
		t.Fatalf("expired token: %s, want 401", r.Status)
	}
}

func TestAlteredBlobIsNeverServed(t *testing.T) {
	f := newFixture(t, 2)
	p := f.upload("2.0", blob("2.0", 2000))
	f.publish("north", "2.0", 100, "")
	srv := httptest.NewTLSServer(f.m.Handler())
	defer srv.Close()
	_, sum, tok := offerOf(t, f.m.Offer(f.tids[0], "", "1.0", f.clock.Now()))
	if r := get(t, srv, f.tids[0], sum, tok, ""); r.StatusCode != 200 {
		t.Fatalf("download: %s", r.Status)
	}
	path := f.m.blobPath(p.SHA256)
	b, _ := os.ReadFile(path)
	b[10] ^= 0xff
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	// Same size; make sure the modification time differs from the verified one.
	os.Chtimes(path, time.Now().Add(time.Minute), time.Now().Add(time.Minute))
	r := get(t, srv, f.tids[0], sum, tok, "")
	body, _ := io.ReadAll(r.Body)
	if r.StatusCode != 500 || bytes.Contains(body, b[:20]) {
		t.Fatalf("altered blob: %s %q, want 500 and no content", r.Status, body)
	}
}

func TestReportsUpdateRolloutCounts(t *testing.T) {
	f := newFixture(t, 4)
	f.upload("2.0", blob("2.0", 100))
	f.publish("north", "2.0", 100, "")
	srv := httptest.NewTLSServer(f.m.Handler())
	defer srv.Close()
	for _, tid := range f.tids {
		f.m.Offer(tid, "", "1.0", f.clock.Now())
	}
	ro := rollout(t, f.m, "north")
	if ro.Terminals != 4 || ro.Versions["1.0"] != 4 || ro.OnRelease != 0 {
		t.Fatalf("before: %+v", ro)
	}
	report := func(tid, status string) {
		_, sum, tok := offerOf(t, f.m.Offer(tid, "", "1.0", f.clock.Now()))
		req, _ := http.NewRequest("POST", srv.URL+"/apps/v1/report/"+tid,
			strings.NewReader(fmt.Sprintf(`{"sha256":%q,"version":"2.0","status":%q,"detail":"E42 flash"}`, sum, status)))
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := srv.Client().Do(req)
		if err != nil || resp.StatusCode != 204 {
			t.Fatalf("report %s: %v %v", status, resp.Status, err)
		}
	}
	report(f.tids[0], "installed")
	report(f.tids[1], "failed")
	f.m.Offer(f.tids[2], "", "2.0", f.clock.Now()) // AV at echo counts too
	ro = rollout(t, f.m, "north")
	if ro.Versions["2.0"] != 2 || ro.Versions["1.0"] != 2 || ro.OnRelease != 2 || ro.Failures != 1 || ro.Failed[0].Terminal != f.tids[1] {
		t.Fatalf("after: %+v", ro)
	}
	// Reports survive a restart.
	f.close()
	f.open()
	if ro = rollout(t, f.m, "north"); ro.OnRelease != 2 || ro.Failures != 1 {
		t.Fatalf("after restart: %+v", ro)
	}
}

func rollout(t *testing.T, m *Manager, g string) Rollout {
	t.Helper()
	ros, err := m.Rollouts(g)
	if err != nil || len(ros) != 1 {
		t.Fatalf("Rollouts(%s): %v %v", g, ros, err)
	}
	return ros[0]
}

func TestWithdrawalStopsDownloadsAndRollsBack(t *testing.T) {
	f := newFixture(t, 3)
	f.upload("2.0", blob("2.0", 100))
	f.upload("2.1", blob("2.1", 100))
	f.publish("north", "2.0", 100, "")
	f.publish("north", "2.1", 100, "")
	srv := httptest.NewTLSServer(f.m.Handler())
	defer srv.Close()
	tid := f.tids[0]
	v, sum, tok := offerOf(t, f.m.Offer(tid, "", "1.0", f.clock.Now()))
	if v != "2.1" {
		t.Fatalf("offered %s, want 2.1", v)
	}
	// Requester cannot approve their own withdrawal.
	c, err := f.m.RequestWithdraw(alice, WithdrawRequest{Group: "north", Rollback: true, Reason: "crash on boot"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.reg.Approve(alice, c.ID, ""); err == nil {
		t.Fatal("the requester approved their own withdrawal")
	}
	if r := get(t, srv, tid, sum, tok, ""); r.StatusCode != 200 {
		t.Fatalf("before approval: %s", r.Status)
	}
	if _, err := f.reg.Approve(bob, c.ID, ""); err != nil {
		t.Fatal(err)
	}
	if r := get(t, srv, tid, sum, tok, ""); r.StatusCode != http.StatusGone {
		t.Fatalf("withdrawn package downloaded: %s, want 410", r.Status)
	}
	if v, _, _ := offerOf(t, f.m.Offer(tid, "", "1.0", f.clock.Now())); v != "2.0" {
		t.Fatalf("after rollback offered %s, want 2.0", v)
	}
	// Withdrawn without rollback: nothing offered.
	f.approve(f.m.RequestWithdraw(alice, WithdrawRequest{Group: "north"}))
	if v := f.m.Offer(tid, "", "1.0", f.clock.Now()); v != "" {
		t.Fatalf("nothing published, offered %q", v)
	}
}

// TestGroupMinimumAndTerminalMinimum: a group's minimum version holds for all its
// terminals, offered the release or not; a terminal whose own minimum is higher
// is held to its own (the higher of the two).
func TestGroupMinimumAndTerminalMinimum(t *testing.T) {
	f := newFixture(t, 1)
	tid := f.tids[0]
	check := func(av string) registry.CheckResult {
		return f.reg.Check(registry.CheckRequest{TerminalID: tid, MerchantID: mid, AppVersion: av, Now: f.clock.Now()})
	}
	if r := check("1.0"); r.Decline {
		t.Fatalf("no minimum: declined %s", r.Reason)
	}
	f.upload("2.0", blob("2.0", 100))
	f.publish("north", "2.0", 10, "1.5") // the minimum holds for the whole group, offered or not
	if r := check("1.0"); !r.Decline || r.Reason != registry.ReasonAppVersionLow || r.ResponseCode != "58" {
		t.Fatalf("AV 1.0 under group minimum 1.5: %+v", r)
	}
	if r := check("1.5"); r.Decline {
		t.Fatalf("AV 1.5: declined %s", r.Reason)
	}
	own := "1.8"
	f.approve(f.reg.RequestChange(alice, registry.Change{Op: registry.OpTerminalChange, Target: tid, TerminalPatch: &registry.TerminalPatch{MinAppVersion: &own}}))
	if r := check("1.6"); r.Reason != registry.ReasonAppVersionLow {
		t.Fatalf("AV 1.6, group minimum 1.5, the terminal's own 1.8: %q, want %s", r.Reason, registry.ReasonAppVersionLow)
	}
	if _, err := f.m.RequestPublish(alice, PublishRequest{Group: "north", App: "demo-pay", Version: "2.0", MinVersion: "3"}); !errors.Is(err, registry.ErrInvalid) {
		t.Fatalf("minimum above the version: %v", err)
	}
}

// TestRevokedKeyStopsOffersAndPublication: revoking an app-signing key (say it
// leaked) stops the offers and downloads of the releases it signed at once, and
// such a package can no longer be published; so does replacing the key under the
// same ID, whose new public key does not verify the old signatures. The group's
// minimum version still holds (revoking must not lower the floor).
func TestRevokedKeyStopsOffersAndPublication(t *testing.T) {
	f := newFixture(t, 2)
	f.upload("2.0", blob("2.0", 100))
	f.publish("north", "2.0", 100, "1.5")
	srv := httptest.NewTLSServer(f.m.Handler())
	defer srv.Close()
	tid := f.tids[0]
	_, sum, tok := offerOf(t, f.m.Offer(tid, "", "1.5", f.clock.Now()))
	if r := get(t, srv, tid, sum, tok, ""); r.StatusCode != 200 {
		t.Fatalf("before the revocation: %s", r.Status)
	}
	pub := f.priv.Public()
	f.approve(f.m.RequestKey(alice, KeyRequest{SigningKey: SigningKey{ID: "acq-1", PublicKey: pemKey(t, pub), Revoked: true}, Reason: "leaked"}))
	if v := f.m.Offer(tid, "", "1.5", f.clock.Now()); v != "" {
		t.Errorf("release signed by a revoked key still offered: %q", v)
	}
	if r := get(t, srv, tid, sum, tok, ""); r.StatusCode != http.StatusGone {
		t.Errorf("release signed by a revoked key still downloaded: %s, want 410", r.Status)
	}
	ro := rollout(t, f.m, "north")
	if ro.Offered != 0 || !strings.Contains(ro.Refused, "acq-1") || !strings.Contains(ro.Refused, "revoked") {
		t.Errorf("rollout after the revocation: offered %d, refused %q", ro.Offered, ro.Refused)
	}
	if r := f.reg.Check(registry.CheckRequest{TerminalID: tid, MerchantID: mid, AppVersion: "1.0", Now: f.clock.Now()}); r.Reason != registry.ReasonAppVersionLow {
		t.Errorf("AV 1.0 under the group minimum after the revocation: %q, want %s", r.Reason, registry.ReasonAppVersionLow)
	}
	_, err := f.m.RequestPublish(alice, PublishRequest{Group: "south", App: "demo-pay", Version: "2.0", Target: Target{Merchants: []string{mid}}})
	if !errors.Is(err, registry.ErrInvalid) || !strings.Contains(err.Error(), "revoked") {
		t.Errorf("publishing a package signed by a revoked key: err %v, want invalid, revoked", err)
	}
	if strings.Contains(f.logs.String(), tok) {
		t.Errorf("the download token is in the log")
	}
	if !strings.Contains(f.logs.String(), "revoked") {
		t.Errorf("the refused release is not logged: %s", f.logs.String())
	}

	// Another public key under the same ID does not verify the old signature either.
	other, _, _ := ed25519.GenerateKey(rand.Reader)
	f.approve(f.m.RequestKey(alice, KeyRequest{SigningKey: SigningKey{ID: "acq-1", PublicKey: pemKey(t, other)}}))
	if v := f.m.Offer(tid, "", "1.5", f.clock.Now()); v != "" {
		t.Errorf("release whose signature the key now named acq-1 does not verify still offered: %q", v)
	}
	if ro := rollout(t, f.m, "north"); !strings.Contains(ro.Refused, "does not verify") {
		t.Errorf("rollout after the key replacement: refused %q", ro.Refused)
	}
	// The original key approved again: offered again.
	f.approve(f.m.RequestKey(alice, KeyRequest{SigningKey: SigningKey{ID: "acq-1", PublicKey: pemKey(t, pub)}}))
	if v := f.m.Offer(tid, "", "1.5", f.clock.Now()); v == "" {
		t.Errorf("release not offered once its key is approved again")
	}
}

// otherNode is the registry as a second node of a cluster sees it: the same
// approved changes, but its own packages (its own data directory). Its Manager
// does not register the operations again (the first node's Check stands for both).
type otherNode struct{ *registry.Registry }

func (otherNode) RegisterOp(registry.Op, registry.ExtOp) {}

// TestOfferedOnlyTheBytesApproved: a publication names a package by name and
// version and fixes its hash when requested; a node whose package under that name
// and version is other bytes (uploaded there on its own, signed all the same: a
// debug build numbered like the release) offers nothing and serves nothing, rather
// than bytes no reviewer approved.
func TestOfferedOnlyTheBytesApproved(t *testing.T) {
	f := newFixture(t, 1)
	tid := f.tids[0]
	approved := blob("2.1", 100)
	f.upload("2.1", approved)

	db2, err := badger.Open(badger.DefaultOptions(f.dir + "/db2").WithLogger(nil).WithMemTableSize(8 << 20).WithValueLogFileSize(16 << 20))
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	logs2 := &syncbuf.Buffer{}
	m2, err := New(db2, otherNode{f.reg}, Options{Dir: f.dir + "/apps2", Now: f.clock.Now, CardHashKey: f.chk, Logger: zerolog.New(logs2)})
	if err != nil {
		t.Fatal(err)
	}
	debug := append(blob("2.1", 100), "debug build"...)
	if _, err := m2.Upload(alice, f.signed("2.1", debug), bytes.NewReader(debug)); err != nil {
		t.Fatal(err)
	}
	f.publish("north", "2.1", 100, "")
	if err := m2.Refresh(); err != nil {
		t.Fatal(err)
	}

	sum := sha256.Sum256(approved)
	if _, got, _ := offerOf(t, f.m.Offer(tid, "", "1.0", f.clock.Now())); got != hex.EncodeToString(sum[:]) {
		t.Fatalf("node 1 offered %s, want the approved %x", got, sum)
	}
	if up := m2.Offer(tid, "", "1.0", f.clock.Now()); up != "" {
		t.Fatalf("node 2 offered %q: bytes other than the approved %x", up, sum)
	}
	dsum := sha256.Sum256(debug)
	srv := httptest.NewTLSServer(m2.Handler())
	defer srv.Close()
	tok := m2.Token(tid, hex.EncodeToString(dsum[:]), f.clock.Now().Add(time.Hour))
	if r := get(t, srv, tid, hex.EncodeToString(dsum[:]), tok, ""); r.StatusCode != http.StatusGone {
		t.Fatalf("node 2 served the unapproved bytes: %s, want 410", r.Status)
	}
	ro, err := m2.Rollouts("north")
	if err != nil {
		t.Fatal(err)
	}
	if len(ro) != 1 || !strings.Contains(ro[0].Refused, "not the") {
		t.Fatalf("node 2 rollout %+v: want it refused for another hash", ro)
	}
	if !strings.Contains(logs2.String(), "offered to no terminal") {
		t.Fatalf("node 2 logged no refusal: %s", logs2.String())
	}
}

// current returns the version of group's current release ("" when none).
func (f *fixture) current(group string) string {
	for _, g := range f.m.Groups() {
		if g.Name == group && g.Current != nil {
			return g.Current.Version
		}
	}
	return ""
}

// TestStaleWithdrawalOrPublicationRefused: a withdrawal or publication is approved
// for the group as it was when requested. Once another release was approved in
// between, approving it would withdraw, roll back to or replace releases nobody
// asked about (a withdrawal of a crashing 2.1 requested before the fix 2.2 went
// out would withdraw 2.2 and put 2.1 back; a publication of 2.0 requested before
// 2.2 would downgrade the group and drop 2.2's minimum): it is refused, 409.
func TestStaleWithdrawalOrPublicationRefused(t *testing.T) {
	f := newFixture(t, 1)
	for _, v := range []string{"2.0", "2.1", "2.2", "2.3"} {
		f.upload(v, blob(v, 100))
	}
	f.publish("north", "2.0", 100, "")
	f.publish("north", "2.1", 100, "")
	w, err := f.m.RequestWithdraw(alice, WithdrawRequest{Group: "north", Rollback: true, Reason: "2.1 crashes on boot"})
	if err != nil {
		t.Fatal(err)
	}
	p, err := f.m.RequestPublish(alice, PublishRequest{Group: "north", App: "demo-pay", Version: "2.0", Target: Target{Merchants: []string{mid}}})
	if err != nil {
		t.Fatal(err)
	}
	f.publish("north", "2.2", 100, "2.2") // the fix, with a minimum
	for _, c := range []*registry.Change{w, p} {
		if _, err := f.reg.Approve(bob, c.ID, ""); !errors.Is(err, registry.ErrConflict) {
			t.Errorf("stale %s approved (err %v): the group is now at %s", c.Op, err, f.current("north"))
		}
	}
	if v := f.current("north"); v != "2.2" {
		t.Fatalf("current release %s, want 2.2", v)
	}
	if up := f.m.Offer(f.tids[0], "", "2.1", f.clock.Now()); !strings.HasPrefix(up, "2.2:") {
		t.Fatalf("offer %q, want 2.2", up)
	}

	// Requested against the group as it is, a withdrawal goes through.
	f.approve(f.m.RequestWithdraw(alice, WithdrawRequest{Group: "north", Rollback: true}))
	if v := f.current("north"); v != "2.1" {
		t.Fatalf("after rollback %s, want 2.1", v)
	}
	// A change requested by a version before the check (no base in its payload)
	// is approved as before.
	b, _ := json.Marshal(WithdrawRequest{Group: "north", Rollback: true})
	f.approve(f.reg.RequestChange(alice, registry.Change{Op: OpWithdraw, Target: "north", Ext: b}))
	if v := f.current("north"); v != "2.0" {
		t.Fatalf("after the old-format rollback %s, want 2.0", v)
	}
	b, _ = json.Marshal(publishPayload{PublishRequest: PublishRequest{Group: "north", App: "demo-pay", Version: "2.3", Target: Target{Merchants: []string{mid}}},
		SHA256: f.m.pkgs["demo-pay@2.3"].SHA256})
	f.approve(f.reg.RequestChange(alice, registry.Change{Op: OpPublish, Target: "north", Ext: b}))
	if v := f.current("north"); v != "2.3" {
		t.Fatalf("after the old-format publication %s, want 2.3", v)
	}
}

// TestKeyRevocationNotUndoneByALaterRequest: the revocation of a leaked key,
// requested first and approved last, must not be folded before a put of the key
// requested after it and approved before it (the fold is in request order): that
// left the key trusted after its revocation was approved. The revocation is
// refused instead (the key changed since it was requested) and is requested again.
// A re-add of the key as approved while the revocation is pending changes nothing
// and is refused at its request; a replacement of the key by another is a change.
func TestKeyRevocationNotUndoneByALaterRequest(t *testing.T) {
	f := newFixture(t, 1)
	pub := f.priv.Public()
	revoke, err := f.m.RequestKey(alice, KeyRequest{SigningKey: SigningKey{ID: "acq-1", PublicKey: pemKey(t, pub), Revoked: true}, Reason: "leaked"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.m.RequestKey(alice, KeyRequest{SigningKey: SigningKey{ID: "acq-1", PublicKey: pemKey(t, pub)}, Reason: "re-add"}); !errors.Is(err, registry.ErrInvalid) ||
		!strings.Contains(err.Error(), "app-signing key acq-1: nothing to change") {
		t.Fatalf("re-add of the key as approved: %v, want nothing to change", err)
	}
	other, _, _ := ed25519.GenerateKey(rand.Reader)
	f.approve(f.m.RequestKey(alice, KeyRequest{SigningKey: SigningKey{ID: "acq-1", PublicKey: pemKey(t, other)}, Reason: "replaced"}))
	if _, err := f.reg.Approve(bob, revoke.ID, ""); !errors.Is(err, registry.ErrConflict) {
		t.Fatalf("revocation requested before the replacement approved after it: err %v, want a conflict", err)
	}
	f.approve(f.m.RequestKey(alice, KeyRequest{SigningKey: SigningKey{ID: "acq-1", PublicKey: pemKey(t, other), Revoked: true}, Reason: "leaked"}))
	if err := f.m.Refresh(); err != nil {
		t.Fatal(err)
	}
	if ks := f.m.Keys(); len(ks) != 1 || !ks[0].Revoked {
		t.Fatalf("keys after the revocation %+v: want acq-1 revoked", ks)
	}
	if _, err := f.m.Upload(alice, f.signed("3.0", blob("3.0", 10)), bytes.NewReader(blob("3.0", 10))); err == nil {
		t.Fatal("upload signed by the revoked key accepted")
	}
}

// TestWithdrawnReleaseNotBroughtBack: a withdrawal of a crashing 2.1 requested
// after a publication of 2.2 and approved before it was folded after it once the
// publication was approved too: it withdrew 2.2 and made the crashing 2.1 current
// again. The publication is refused instead.
func TestWithdrawnReleaseNotBroughtBack(t *testing.T) {
	f := newFixture(t, 1)
	for _, v := range []string{"2.0", "2.1", "2.2"} {
		f.upload(v, blob(v, 100))
	}
	f.publish("north", "2.0", 100, "")
	f.publish("north", "2.1", 100, "")
	p, err := f.m.RequestPublish(alice, PublishRequest{Group: "north", App: "demo-pay", Version: "2.2", Target: Target{Merchants: []string{mid}}})
	if err != nil {
		t.Fatal(err)
	}
	f.approve(f.m.RequestWithdraw(alice, WithdrawRequest{Group: "north", Rollback: true, Reason: "2.1 crashes on boot"}))
	if _, err := f.reg.Approve(bob, p.ID, ""); !errors.Is(err, registry.ErrConflict) {
		t.Errorf("publication requested before the withdrawal approved after it: err %v, want a conflict", err)
	}
	if err := f.m.Refresh(); err != nil {
		t.Fatal(err)
	}
	if v := f.current("north"); v != "2.0" {
		t.Fatalf("current release %s, want 2.0 (2.1 withdrawn)", v)
	}
}

// TestEchoOfUnknownTerminalKeepsNothing: an echo needs no terminal check, and a
// terminal ID the registry does not know has no MAC key to verify, so anyone who
// can reach a terminal listener can send echoes with made-up terminal IDs. Their
// AV must not be kept: a report per made-up ID (in memory and in Badger) grew
// without bound.
func TestEchoOfUnknownTerminalKeepsNothing(t *testing.T) {
	f := newFixture(t, 1)
	for i := range 50 {
		if up := f.m.Offer(fmt.Sprintf("X%07d", i), "", "1.0", f.clock.Now()); up != "" {
			t.Fatalf("unknown terminal offered %q", up)
		}
	}
	if n := len(f.m.Reports()); n != 0 {
		t.Fatalf("%d reports kept for unknown terminals, want none", n)
	}
	if err := f.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(pfxReport)})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			return fmt.Errorf("report stored: %s", it.Item().Key())
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// A registered terminal's AV is kept as before.
	f.m.Offer(f.tids[0], "", "1.0", f.clock.Now())
	if r, ok := f.m.ReportOf(f.tids[0]); !ok || r.Version != "1.0" {
		t.Fatalf("registered terminal's report %+v %v, want version 1.0", r, ok)
	}
}

// TestUploadAndDownloadRefuseTraversalAndOversize: names and versions that would
// climb out of the data directory, an upload larger than the bound, and a
// download naming a path instead of a hash are refused, and leave nothing behind.
func TestUploadAndDownloadRefuseTraversalAndOversize(t *testing.T) {
	f := newFixture(t, 1)
	f.tweak = func(o *Options) { o.MaxPackageBytes = 1000 }
	f.close()
	f.open()
	data := blob("2.0", 100)
	for _, c := range []struct{ name, version string }{
		{"../../etc/passwd", "1.0"}, {"demo-pay", "1.0/../../x"}, {"demo pay", "1.0"}, {"demo-pay", "1.0\nkinds=softpos"},
		{"demo-pay\nversion=9.9", "1.0"}, {"", "1.0"}, {"demo-pay", ""},
	} {
		req := f.signed(c.version, data)
		req.Name = c.name
		if _, err := f.m.Upload(alice, req, bytes.NewReader(data)); !errors.Is(err, registry.ErrInvalid) {
			t.Errorf("upload %q@%q: err %v, want invalid", c.name, c.version, err)
		}
	}
	big := blob("2.0", 2000)
	if _, err := f.m.Upload(alice, f.signed("2.0", big), bytes.NewReader(big)); !errors.Is(err, registry.ErrInvalid) {
		t.Errorf("upload of %d bytes with a bound of 1000: err %v, want invalid", len(big), err)
	}
	ents, err := os.ReadDir(f.dir + "/apps/sha256")
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	if len(ents) != 0 {
		t.Fatalf("refused uploads left %d files in the blob directory", len(ents))
	}
	p := f.upload("2.0", data)
	f.publish("north", "2.0", 100, "")
	srv := httptest.NewTLSServer(f.m.Handler())
	defer srv.Close()
	tid := f.tids[0]
	_, _, tok := offerOf(t, f.m.Offer(tid, "", "1.0", f.clock.Now()))
	for _, sum := range []string{"..%2F..%2Fdb%2FMANIFEST", "..%2F" + p.SHA256, strings.ToUpper(p.SHA256) + "%00"} {
		if r := get(t, srv, tid, sum, tok, ""); r.StatusCode != http.StatusUnauthorized {
			t.Errorf("download of %q: %s, want 401", sum, r.Status)
		}
	}
	// Another terminal's ID with this terminal's token, and a token past its expiry.
	if r := get(t, srv, "T9999999", p.SHA256, tok, ""); r.StatusCode != http.StatusUnauthorized {
		t.Errorf("download with another terminal's token: %s, want 401", r.Status)
	}
	f.clock.mu.Lock()
	f.clock.t = f.clock.t.Add(25 * time.Hour)
	f.clock.mu.Unlock()
	if r := get(t, srv, tid, p.SHA256, tok, ""); r.StatusCode != http.StatusUnauthorized {
		t.Errorf("download with an expired token: %s, want 401", r.Status)
	}
}

// Versions of one app that compare equal but are written differently ("1.2",
// "1.2.0", "1.02") are refused at upload (409), since a terminal on one would
// never be offered the other; and a publication is refused when the group
// published such a twin before (packages stored before the upload check).
func TestVersionsEqualByComparisonRefused(t *testing.T) {
	f := newFixture(t, 3)
	f.upload("1.2", blob("1.2", 100))
	for _, v := range []string{"1.2.0", "1.02", "1.2.0.0"} {
		data := blob(v, 100)
		_, err := f.m.Upload(alice, f.signed(v, data), bytes.NewReader(data))
		if !errors.Is(err, registry.ErrConflict) || !strings.Contains(err.Error(), "equals the stored demo-pay@1.2") {
			t.Errorf("upload %s beside 1.2: %v, want a conflict naming demo-pay@1.2", v, err)
		}
	}
	f.upload("1.2.1", blob("1.2.1", 100)) // higher: accepted
	f.upload("1.2", blob("1.2", 100))     // the same again: the stored package

	// A twin stored before the check (injected as an earlier version left it).
	f.publish("north", "1.2", 100, "")
	data := blob("1.2.0", 100)
	sum := sha256.Sum256(data)
	if err := os.WriteFile(f.m.blobs.path(hex.EncodeToString(sum[:])), data, 0o600); err != nil {
		t.Fatal(err)
	}
	req := f.signed("1.2.0", data)
	f.m.mu.Lock()
	pkgs := maps.Clone(f.m.pkgs)
	pkgs["demo-pay@1.2.0"] = &Package{Name: "demo-pay", Version: "1.2.0", Kinds: req.Kinds, Size: int64(len(data)), SHA256: hex.EncodeToString(sum[:]),
		KeyID: req.KeyID, Signature: req.Signature}
	f.m.pkgs = pkgs
	f.m.mu.Unlock()
	_, err := f.m.RequestPublish(alice, PublishRequest{Group: "north", App: "demo-pay", Version: "1.2.0", Target: Target{Merchants: []string{mid}, Percent: 100}})
	if !errors.Is(err, registry.ErrInvalid) || !strings.Contains(err.Error(), "group north: demo-pay@1.2.0 equals the 1.2 published in the group before") {
		t.Errorf("publish 1.2.0 over 1.2: %v, want refused", err)
	}
	// Another group never had 1.2: 1.2.0 may go there.
	f.publish("south", "1.2.0", 100, "")
}

// App-signing keys are Ed25519 or ECDSA on P-256, the curve the terminals
// verify: a key on another curve is refused when it is requested, naming the
// curve; one approved before the check (a stored state) no longer vouches for
// uploads or publications, and New logs it as unusable.
func TestECDSAKeyOtherCurvesRefused(t *testing.T) {
	f := newFixture(t, 0)
	for _, c := range []elliptic.Curve{elliptic.P224(), elliptic.P384(), elliptic.P521()} {
		k, _ := ecdsa.GenerateKey(c, rand.Reader)
		_, err := f.m.RequestKey(alice, KeyRequest{SigningKey: SigningKey{ID: "acq-ec", PublicKey: pemKey(t, &k.PublicKey)}})
		want := "ECDSA on curve " + c.Params().Name + ": the terminals verify ECDSA on P-256 only"
		if !errors.Is(err, registry.ErrInvalid) || !strings.Contains(err.Error(), want) {
			t.Errorf("%s key: %v, want refused with %q", c.Params().Name, err, want)
		}
	}
	// A P-384 key in the approved state, as one approved before the check left it.
	k, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	data := blob("3.1", 300)
	sum := sha256.Sum256(data)
	h := sha256.Sum256(Statement("demo-pay", "3.1", hex.EncodeToString(sum[:]), int64(len(data)), nil, nil))
	sig, _ := ecdsa.SignASN1(rand.Reader, k, h[:])
	st := newState()
	st.keys["acq-384"] = &SigningKey{ID: "acq-384", PublicKey: pemKey(t, &k.PublicKey), Algorithm: "ecdsa"}
	p := &Package{Name: "demo-pay", Version: "3.1", SHA256: hex.EncodeToString(sum[:]), Size: int64(len(data)), KeyID: "acq-384", Signature: base64.StdEncoding.EncodeToString(sig)}
	if err := st.trust(p); err == nil || !strings.Contains(err.Error(), "ECDSA on curve P-384") {
		t.Errorf("package signed by a stored P-384 key: trust %v, want refused naming P-384", err)
	}
	f.m.mu.Lock()
	f.m.st = st
	f.m.mu.Unlock()
	f.m.warnUnusableKeys()
	if out := f.logs.String(); !strings.Contains(out, "app-signing key acq-384 is approved but unusable") || !strings.Contains(out, "P-384") {
		t.Errorf("no warning about the stored P-384 key:\n%s", out)
	}
}

// TestKeyPutAndPublicationOfNothingRefused: a put of an approved app-signing key as
// it is (its public key in another PEM wrapping included) and a publication of a
// group's current release as it is (its target's lists in another order, percent
// 0 for 100) are refused at their request, naming the fields, and request nothing;
// a revocation, another target or minimum version, and a group that had its
// release withdrawn are changes, requested.
func TestKeyPutAndPublicationOfNothingRefused(t *testing.T) {
	f := newFixture(t, 2)
	before, _ := f.reg.Changes(registry.ChangeFilter{})
	pub := f.priv.Public()
	_, err := f.m.RequestKey(alice, KeyRequest{SigningKey: SigningKey{ID: "acq-1", PublicKey: "\n" + strings.ReplaceAll(pemKey(t, pub), "\n", "\r\n")}})
	if !errors.Is(err, registry.ErrInvalid) || !strings.HasPrefix(err.Error(), "app-signing key acq-1: nothing to change: public_key is already sha256:") ||
		!strings.HasSuffix(err.Error(), ", revoked is already false") {
		t.Fatalf("the approved key put again: %v", err)
	}
	f.upload("2.0", blob("2.0", 100))
	req := PublishRequest{Group: "north", App: "demo-pay", Version: "2.0", MinVersion: "1.5",
		Target: Target{Terminals: []string{f.tids[1], f.tids[0]}, Percent: 100}}
	f.approve(f.m.RequestPublish(alice, req))
	after, _ := f.reg.Changes(registry.ChangeFilter{})
	again := req
	again.Target = Target{Terminals: []string{f.tids[0], f.tids[1], f.tids[0]}}
	again.Reason = "once more"
	_, err = f.m.RequestPublish(alice, again)
	want := `rollout group north: nothing to change: app is already demo-pay, version is already 2.0, target is already {"terminals":["T0000000","T0000001"],"percent":100}, min_version is already 1.5`
	if !errors.Is(err, registry.ErrInvalid) || err.Error() != want {
		t.Fatalf("the current release published again: %v\nwant %s", err, want)
	}
	if now, _ := f.reg.Changes(registry.ChangeFilter{}); len(now) != len(after) || len(after) != len(before)+1 {
		t.Fatalf("%d changes, want %d (the first publication alone)", len(now), len(before)+1)
	}
	for _, changed := range []PublishRequest{
		{Group: "north", App: "demo-pay", Version: "2.0", MinVersion: "2.0", Target: req.Target},
		{Group: "north", App: "demo-pay", Version: "2.0", MinVersion: "1.5", Target: Target{Terminals: req.Target.Terminals, Percent: 50}},
		{Group: "south", App: "demo-pay", Version: "2.0", MinVersion: "1.5", Target: req.Target},
	} {
		c, err := f.m.RequestPublish(alice, changed)
		if err != nil {
			t.Fatalf("publication %+v: %v", changed, err)
		}
		if _, err := f.reg.Cancel(alice, c.ID, ""); err != nil {
			t.Fatal(err)
		}
	}
	f.approve(f.m.RequestWithdraw(alice, WithdrawRequest{Group: "north", Reason: "crash"}))
	f.approve(f.m.RequestPublish(alice, req)) // back after its withdrawal: a change
	f.approve(f.m.RequestKey(alice, KeyRequest{SigningKey: SigningKey{ID: "acq-1", PublicKey: pemKey(t, pub), Revoked: true}, Reason: "leaked"}))
	if _, err := f.m.RequestKey(alice, KeyRequest{SigningKey: SigningKey{ID: "acq-1", PublicKey: pemKey(t, pub), Revoked: true}}); !errors.Is(err, registry.ErrInvalid) ||
		!strings.Contains(err.Error(), "revoked is already true") {
		t.Fatalf("the revoked key revoked again: %v", err)
	}
}

// TestGroupMinimumHoldsOnANodeWithoutThePackage: packages are per node, so a node
// of a cluster where the release's package was not (yet) uploaded resolves the
// group without it. It offers nothing, but the group's minimum version, a
// security floor the publication approved, must hold there all the same: it
// dropped it, so that the terminals on that node were accepted below the floor,
// and said nothing about the missing package.
func TestGroupMinimumHoldsOnANodeWithoutThePackage(t *testing.T) {
	f := newFixture(t, 2)
	f.upload("2.1", blob("2.1", 100))
	f.publish("north", "2.1", 100, "2.1") // the security fix, and its floor

	db2, err := badger.Open(badger.DefaultOptions(f.dir + "/db2").WithLogger(nil).WithMemTableSize(8 << 20).WithValueLogFileSize(16 << 20))
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	logs2 := &syncbuf.Buffer{}
	m2, err := New(db2, otherNode{f.reg}, Options{Dir: f.dir + "/apps2", Now: f.clock.Now, CardHashKey: f.chk, Logger: zerolog.New(logs2)})
	if err != nil {
		t.Fatal(err)
	}
	// m2's Refresh sets the group minimums of the registry it is given, as node 2
	// sets its own registry's.
	if err := m2.Refresh(); err != nil {
		t.Fatal(err)
	}
	for _, tid := range f.tids {
		r := f.reg.Check(registry.CheckRequest{TerminalID: tid, MerchantID: mid, AppVersion: "2.0", Now: f.clock.Now()})
		if r.Reason != registry.ReasonAppVersionLow {
			t.Errorf("node without the package: %s on AV 2.0 under the group minimum 2.1: %q, want %s", tid, r.Reason, registry.ReasonAppVersionLow)
		}
		if up := m2.Offer(tid, "", "2.0", f.clock.Now()); up != "" {
			t.Errorf("node without the package offered %s %q", tid, up)
		}
	}
	ro, err := m2.Rollouts("north")
	if err != nil {
		t.Fatal(err)
	}
	if len(ro) != 1 || ro[0].Terminals != 2 || !strings.Contains(ro[0].Refused, "no package demo-pay@2.1") {
		t.Errorf("node 2 rollout %+v: want its 2 terminals, refused for the missing package", ro)
	}
	if !strings.Contains(logs2.String(), "no package demo-pay@2.1") {
		t.Errorf("node 2 did not log the missing package: %s", logs2.String())
	}
	// A publication requested by a version before the release recorded what its
	// package runs on: node 2 cannot tell its terminals, and says so.
	b, _ := json.Marshal(publishPayload{PublishRequest: PublishRequest{Group: "south", App: "demo-pay", Version: "2.1", Target: Target{Merchants: []string{mid}}},
		SHA256: f.m.pkgs["demo-pay@2.1"].SHA256})
	f.approve(f.reg.RequestChange(alice, registry.Change{Op: OpPublish, Target: "south", Ext: b}))
	if err := m2.Refresh(); err != nil {
		t.Fatal(err)
	}
	if ro, _ := m2.Rollouts("south"); len(ro) != 1 || !strings.Contains(ro[0].Refused, "minimum version is not enforced on this node") {
		t.Errorf("node 2 rollout of an old-format publication %+v: want refused, saying the minimum is not enforced", ro)
	}
}

// TestSamePackageReSignedAfterRevocation: after its signing key is revoked (say it
// leaked), the same bytes signed by another approved key are uploaded again, as
// docs/apps.md says to: the new signature is kept and the release is offered
// again, at once (the upload refreshes the groups: it waited for the next
// refresh). The stored package came back with its revoked key instead, the upload
// answered as if it had worked, and the publication stayed refused. Other models
// or kinds for the same version are refused: a version is immutable.
func TestSamePackageReSignedAfterRevocation(t *testing.T) {
	f := newFixture(t, 1)
	tid := f.tids[0]
	data := blob("2.0", 100)
	f.upload("2.0", data)
	f.publish("north", "2.0", 100, "")
	f.approve(f.m.RequestKey(alice, KeyRequest{SigningKey: SigningKey{ID: "acq-1", PublicKey: pemKey(t, f.priv.Public()), Revoked: true}, Reason: "leaked"}))
	if up := f.m.Offer(tid, "", "1.0", f.clock.Now()); up != "" {
		t.Fatalf("offered under a revoked key: %q", up)
	}
	npub, npriv, _ := ed25519.GenerateKey(rand.Reader)
	f.approve(f.m.RequestKey(alice, KeyRequest{SigningKey: SigningKey{ID: "acq-2", PublicKey: pemKey(t, npub)}, Reason: "new key"}))
	f.priv = npriv
	req := f.signed("2.0", data)
	req.KeyID = "acq-2"
	p, err := f.m.Upload(alice, req, bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if p.KeyID != "acq-2" {
		t.Fatalf("re-signed upload answered with the package signed by %s, want acq-2", p.KeyID)
	}
	// Offered at once: the upload resolves the groups itself, without waiting for
	// the next refresh (Options.RefreshInterval), which this test never runs.
	if v, _, _ := offerOf(t, f.m.Offer(tid, "", "1.0", f.clock.Now())); v != "2.0" {
		t.Fatalf("re-signed release offered %q, want 2.0", v)
	}
	// Kept across a restart.
	f.close()
	f.open()
	if v, _, _ := offerOf(t, f.m.Offer(tid, "", "1.0", f.clock.Now())); v != "2.0" {
		t.Fatalf("after a restart: offered %q, want 2.0", v)
	}
	// The same bytes for other kinds: refused, whoever signs.
	sum := sha256.Sum256(data)
	st := Statement("demo-pay", "2.0", hex.EncodeToString(sum[:]), int64(len(data)), nil, []string{"pos", "softpos"})
	other := UploadRequest{Name: "demo-pay", Version: "2.0", Kinds: []string{"pos", "softpos"}, KeyID: "acq-2",
		Signature: base64.StdEncoding.EncodeToString(ed25519.Sign(npriv, st))}
	f.approve(f.m.RequestKey(alice, KeyRequest{SigningKey: SigningKey{ID: "acq-2", PublicKey: pemKey(t, npub), Revoked: true}, Reason: "leaked too"}))
	f.approve(f.m.RequestKey(alice, KeyRequest{SigningKey: SigningKey{ID: "acq-1", PublicKey: pemKey(t, npub)}, Reason: "reuse"}))
	other.KeyID = "acq-1"
	if _, err := f.m.Upload(alice, other, bytes.NewReader(data)); !errors.Is(err, registry.ErrConflict) {
		t.Fatalf("same bytes for other kinds: %v, want a conflict", err)
	}
}

// TestFailureDetailSanitised holds the free text a terminal reports with a failed
// installation (shown on the console's terminal and applications pages, logged,
// stored) to the switch's hygiene: a card number in it is masked before it is
// kept or logged, a control or format character (a bidi override that would
// reorder the console's text) is replaced, and the 200-byte cut never splits a
// character. Before, the text was kept and logged as the terminal sent it.
func TestFailureDetailSanitised(t *testing.T) {
	f := newFixture(t, 1)
	f.upload("2.0", blob("2.0", 100))
	f.publish("north", "2.0", 100, "")
	srv := httptest.NewTLSServer(f.m.Handler())
	defer srv.Close()
	tid := f.tids[0]
	_, sum, tok := offerOf(t, f.m.Offer(tid, "", "1.0", f.clock.Now()))
	detail := "E42 card 4111111111111111 read\u202egnp.exe\u202c\x1b[2J " + strings.Repeat("x", 150) + "中文"
	// Cut at 200 bytes, "中" (3 bytes) straddles the bound.
	detail += strings.Repeat("y", 200)
	if i := strings.Index(detail, "中"); i > 200 || i+3 <= 200 {
		t.Fatalf("test setup: 中 at byte %d does not straddle byte 200", i)
	}
	body, _ := json.Marshal(ReportRequest{SHA256: sum, Version: "2.0", Status: "failed", Detail: detail})
	req, _ := http.NewRequest("POST", srv.URL+"/apps/v1/report/"+tid, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := srv.Client().Do(req)
	if err != nil || resp.StatusCode != 204 {
		t.Fatalf("report: %v %v", resp, err)
	}
	check := func(where, got string) {
		t.Helper()
		if strings.Contains(got, "4111111111111111") || !strings.Contains(got, "411111******1111") {
			t.Errorf("%s: card number not masked: %q", where, got)
		}
		if strings.ContainsAny(got, "\u202e\u202c\x1b") {
			t.Errorf("%s: control or bidi character kept: %q", where, got)
		}
		if !utf8.ValidString(got) {
			t.Errorf("%s: not valid UTF-8: %q", where, got)
		}
	}
	rep, ok := f.m.ReportOf(tid)
	if !ok || rep.Failed == nil {
		t.Fatalf("report of %s: %+v %v", tid, rep, ok)
	}
	check("stored detail", rep.Failed.Detail)
	if len(rep.Failed.Detail) > 200 {
		t.Errorf("detail of %d bytes kept, want at most 200", len(rep.Failed.Detail))
	}
	if logs := f.logs.String(); strings.Contains(logs, "4111111111111111") {
		t.Errorf("log holds the clear card number: %s", logs)
	}
	// A report stored before the text was cleaned is cleaned when loaded.
	old := Report{Terminal: tid, Version: "1.0", ReportedAt: f.clock.Now(), Failed: &Failure{Version: "2.0", Detail: detail[:200], At: f.clock.Now()}}
	raw, _ := json.Marshal(old)
	if err := f.db.Update(func(txn *badger.Txn) error { return txn.Set([]byte(pfxReport+tid), raw) }); err != nil {
		t.Fatal(err)
	}
	f.close()
	f.open()
	if rep, _ = f.m.ReportOf(tid); rep.Failed == nil {
		t.Fatal("failure lost at restart")
	}
	check("detail stored before, after restart", rep.Failed.Detail)
}

// uploadApp signs and uploads data as name@version for kind pos.
func (f *fixture) uploadApp(name, version string, data []byte) {
	f.t.Helper()
	sum := sha256.Sum256(data)
	st := Statement(name, version, hex.EncodeToString(sum[:]), int64(len(data)), nil, []string{"pos"})
	req := UploadRequest{Name: name, Version: version, Kinds: []string{"pos"}, KeyID: "acq-1",
		Signature: base64.StdEncoding.EncodeToString(ed25519.Sign(f.priv, st))}
	if _, err := f.m.Upload(alice, req, bytes.NewReader(data)); err != nil {
		f.t.Fatalf("upload %s@%s: %v", name, version, err)
	}
}

// TestOffersAndMinimumsPerApplication: a terminal in the rollout groups of two
// applications is offered only releases of the application it says it runs (AN)
// and held only to that application's minimum. Before, versions were compared
// without the application: a terminal on demo-pay 2.1 in a group of another
// application with minimum 5.0 was declined 58 app-version-low, and offered the
// other application's 5.0. A terminal naming no application (or one none of its
// groups publishes) is held to the highest minimum of all its groups (the safe
// side) and, in groups of several applications, offered nothing; in groups of one
// application it is offered and held as before.
func TestOffersAndMinimumsPerApplication(t *testing.T) {
	f := newFixture(t, 2)
	both, single := f.tids[0], f.tids[1]
	f.upload("2.1", blob("2.1", 100))
	f.uploadApp("tools", "5.0", blob("5.0", 100))
	f.approve(f.m.RequestPublish(alice, PublishRequest{Group: "pay", App: "demo-pay", Version: "2.1",
		Target: Target{Merchants: []string{mid}}, MinVersion: "2.0"}))
	f.approve(f.m.RequestPublish(alice, PublishRequest{Group: "tools", App: "tools", Version: "5.0",
		Target: Target{Terminals: []string{both}}, MinVersion: "5.0"}))
	check := func(tid, app, av string) registry.Reason {
		return f.reg.Check(registry.CheckRequest{TerminalID: tid, MerchantID: mid, AppName: app, AppVersion: av, Now: f.clock.Now()}).Reason
	}
	for _, c := range []struct {
		tid, app, av string
		want         registry.Reason
	}{
		{both, "demo-pay", "2.1", registry.ReasonNone},          // held to demo-pay's 2.0, not tools' 5.0
		{both, "demo-pay", "1.9", registry.ReasonAppVersionLow}, // under demo-pay's 2.0
		{both, "tools", "4.9", registry.ReasonAppVersionLow},
		{both, "tools", "5.0", registry.ReasonNone},
		{both, "", "2.1", registry.ReasonAppVersionLow},      // no name: the highest, 5.0
		{both, "other", "2.1", registry.ReasonAppVersionLow}, // a name none of its groups publishes: the same
		{single, "", "2.0", registry.ReasonNone},             // one application: as before
		{single, "", "1.9", registry.ReasonAppVersionLow},
	} {
		if got := check(c.tid, c.app, c.av); got != c.want {
			t.Errorf("%s running %q %s: %q, want %q", c.tid, c.app, c.av, got, c.want)
		}
	}
	if v, _, _ := offerOf(t, f.m.Offer(both, "demo-pay", "2.0", f.clock.Now())); v != "2.1" {
		t.Errorf("demo-pay 2.0 in groups of demo-pay 2.1 and tools 5.0: offered %q, want 2.1", v)
	}
	if v, _, _ := offerOf(t, f.m.Offer(both, "tools", "4.0", f.clock.Now())); v != "5.0" {
		t.Errorf("tools 4.0: offered %q, want 5.0", v)
	}
	if up := f.m.Offer(both, "demo-pay", "2.1", f.clock.Now()); up != "" {
		t.Errorf("demo-pay 2.1, on its release: offered %q (another application's?)", up)
	}
	if up := f.m.Offer(both, "", "2.0", f.clock.Now()); up != "" {
		t.Errorf("no name, groups of two applications: offered %q, want nothing", up)
	}
	if v, _, _ := offerOf(t, f.m.Offer(single, "", "2.0", f.clock.Now())); v != "2.1" {
		t.Errorf("no name, one application: offered %q, want 2.1", v)
	}
}

// TestNewTerminalHeldToGroupMinimumAtOnce: a terminal registered into a group, or
// changed into one, is held to the group's minimum from its very first request,
// without a refresh of the groups (which this test never runs: Check asks the
// groups from the terminal's current record). Before, it was held to it only from
// the next refresh, up to apps.refresh_interval later.
func TestNewTerminalHeldToGroupMinimumAtOnce(t *testing.T) {
	f := newFixture(t, 0)
	f.upload("2.1", blob("2.1", 100))
	f.approve(f.m.RequestPublish(alice, PublishRequest{Group: "a920", App: "demo-pay", Version: "2.1",
		Target: Target{Models: []string{"A920"}}, MinVersion: "2.1"}))
	f.approve(f.reg.RequestChange(alice, registry.Change{Op: registry.OpTerminalImport, Terminals: []registry.Terminal{
		{ID: "TNEW0001", MerchantID: mid, Kind: registry.KindPOS, Model: "A920", Status: registry.TerminalActive},
		{ID: "TNEW0002", MerchantID: mid, Kind: registry.KindPOS, Model: "S90", Status: registry.TerminalActive},
	}}))
	check := func(tid string) registry.CheckResult {
		return f.reg.Check(registry.CheckRequest{TerminalID: tid, MerchantID: mid, AppVersion: "2.0", Now: f.clock.Now()})
	}
	if r := check("TNEW0001"); r.Reason != registry.ReasonAppVersionLow || r.ResponseCode != "58" {
		t.Errorf("new terminal in the group, AV 2.0 under its minimum 2.1: %s %q, want 58 %s", r.ResponseCode, r.Reason, registry.ReasonAppVersionLow)
	}
	if r := check("TNEW0002"); r.Decline {
		t.Fatalf("new terminal outside the group: declined %s", r.Reason)
	}
	model := "A920"
	f.approve(f.reg.RequestChange(alice, registry.Change{Op: registry.OpTerminalChange, Target: "TNEW0002", TerminalPatch: &registry.TerminalPatch{Model: &model}}))
	if r := check("TNEW0002"); r.Reason != registry.ReasonAppVersionLow {
		t.Errorf("terminal changed into the group, AV 2.0 under its minimum 2.1: %q, want %s", r.Reason, registry.ReasonAppVersionLow)
	}
}

// TestRolloutCountsPerApplication: a group's versions count only the terminals
// running its application. Terminals report their version with the application
// they name (DE 48 AN with the AV; the package of an installation report), and
// that is stored: a terminal of another application is counted apart
// (OtherApp), one naming none in groups of several applications under
// UnknownApp, one naming none in groups of one application under the group (as
// offers go). A report stored before the application was (no "app") is counted
// under each group as before and flagged (Unrecorded). Before, every terminal of
// the group was counted by its version: the tools terminals' 4.0 showed in the
// demo-pay group, and a tools failure among demo-pay's.
func TestRolloutCountsPerApplication(t *testing.T) {
	f := newFixture(t, 5)
	tools, none, named, single, legacy := f.tids[0], f.tids[1], f.tids[2], f.tids[3], f.tids[4]
	f.upload("2.1", blob("2.1", 100))
	f.uploadApp("tools", "5.0", blob("5.0", 100))
	f.approve(f.m.RequestPublish(alice, PublishRequest{Group: "pay", App: "demo-pay", Version: "2.1",
		Target: Target{Merchants: []string{mid}}, MinVersion: "2.0"}))
	f.approve(f.m.RequestPublish(alice, PublishRequest{Group: "tools", App: "tools", Version: "5.0",
		Target: Target{Terminals: []string{tools, none, legacy}}, MinVersion: "5.0"}))
	srv := httptest.NewTLSServer(f.m.Handler())
	defer srv.Close()
	report := func(tid, up, status string) {
		t.Helper()
		v, sum, tok := offerOf(t, up)
		body, _ := json.Marshal(ReportRequest{SHA256: sum, Version: v, Status: status, Detail: "E42"})
		req, _ := http.NewRequest("POST", srv.URL+"/apps/v1/report/"+tid, bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := srv.Client().Do(req)
		if err != nil || resp.StatusCode != 204 {
			t.Fatalf("report %s of %s: %v %v", status, tid, resp, err)
		}
	}
	// tools 4.0, whose installation of tools 5.0 failed.
	report(tools, f.m.Offer(tools, "tools", "4.0", f.clock.Now()), "failed")
	f.m.Offer(none, "", "2.1", f.clock.Now())                                // no name, in groups of two applications
	f.m.Offer(named, "demo-pay", "1.9", f.clock.Now())                       // demo-pay 1.9, named
	report(single, f.m.Offer(single, "", "2.0", f.clock.Now()), "installed") // no name; installs demo-pay 2.1
	if rep, _ := f.m.ReportOf(single); rep.App != "demo-pay" || rep.Version != "2.1" {
		t.Errorf("installation report of demo-pay 2.1: %+v, want app demo-pay recorded", rep)
	}
	if rep, _ := f.m.ReportOf(tools); rep.App != "tools" || rep.Failed == nil || rep.Failed.App != "tools" {
		t.Errorf("tools terminal: %+v, want app tools and the failure of tools", rep)
	}
	// A report stored before the application was recorded: no "app" key.
	raw := fmt.Sprintf(`{"terminal":%q,"version":"4.0","reported_at":%q}`, legacy, f.clock.Now().Format(time.RFC3339))
	if err := f.db.Update(func(txn *badger.Txn) error { return txn.Set([]byte(pfxReport+legacy), []byte(raw)) }); err != nil {
		t.Fatal(err)
	}
	f.close()
	f.open() // the reports as stored, the legacy one among them
	if rep, _ := f.m.ReportOf(legacy); !rep.AppUnrecorded || rep.Version != "4.0" {
		t.Fatalf("legacy report after a restart: %+v, want version 4.0 flagged unrecorded", rep)
	}
	if rep, _ := f.m.ReportOf(none); rep.AppUnrecorded || rep.App != "" {
		t.Fatalf("report naming no application after a restart: %+v, want not flagged unrecorded", rep)
	}
	type want struct {
		versions, unknownApp               map[string]int
		other, unrecorded, on, below, fail int
	}
	for g, w := range map[string]want{
		// named 1.9 (below 2.0), single 2.1, legacy 4.0 (as before, flagged).
		"pay": {versions: map[string]int{"1.9": 1, "2.1": 1, "4.0": 1}, unknownApp: map[string]int{"2.1": 1},
			other: 1, unrecorded: 1, on: 2, below: 1},
		// tools 4.0 and legacy 4.0, both below 5.0; none's 2.1 apart, below too.
		"tools": {versions: map[string]int{"4.0": 2}, unknownApp: map[string]int{"2.1": 1},
			unrecorded: 1, on: 0, below: 3, fail: 1},
	} {
		ro := rollout(t, f.m, g)
		if !maps.Equal(ro.Versions, w.versions) || !maps.Equal(ro.UnknownApp, w.unknownApp) || ro.OtherApp != w.other ||
			ro.Unrecorded != w.unrecorded || ro.OnRelease != w.on || ro.BelowMin != w.below || ro.Failures != w.fail {
			t.Errorf("group %s: versions %v, unknown application %v, other %d, unrecorded %d, on release %d, below minimum %d, failures %d; want %+v",
				g, ro.Versions, ro.UnknownApp, ro.OtherApp, ro.Unrecorded, ro.OnRelease, ro.BelowMin, ro.Failures, w)
		}
	}
	// The legacy terminal reports again, naming its application: no longer flagged.
	f.m.Offer(legacy, "tools", "5.0", f.clock.Now())
	if ro := rollout(t, f.m, "pay"); ro.Unrecorded != 0 || ro.OtherApp != 2 || ro.Versions["4.0"] != 0 {
		t.Errorf("pay after the legacy terminal named tools: %+v", ro)
	}
}

// TestAppKeptAndAttested: an AV sent without AN keeps the application recorded for
// the terminal (until the third release of 6 December 2026 it cleared it, and the
// terminal moved from its application's counts to "unknown application"); an
// application recorded from a verified attestation (OfferAttested, the sign-on's AJ
// app claim) is counted, kept across a restart, not replaced by an AN naming another
// application, which is offered nothing of that other application; a later attested
// sign-on replaces it.
func TestAppKeptAndAttested(t *testing.T) {
	f := newFixture(t, 1)
	tid := f.tids[0]
	f.upload("2.1", blob("2.1", 100))
	f.uploadApp("tools", "5.0", blob("5.0", 100))
	f.approve(f.m.RequestPublish(alice, PublishRequest{Group: "pay", App: "demo-pay", Version: "2.1",
		Target: Target{Merchants: []string{mid}}, MinVersion: "2.0"}))
	f.approve(f.m.RequestPublish(alice, PublishRequest{Group: "tools", App: "tools", Version: "5.0",
		Target: Target{Terminals: []string{tid}}, MinVersion: "5.0"}))

	f.m.Offer(tid, "tools", "4.0", f.clock.Now())
	f.m.Offer(tid, "", "4.1", f.clock.Now()) // AV without AN
	if rep, _ := f.m.ReportOf(tid); rep.App != "tools" || rep.Version != "4.1" || rep.AppAttested {
		t.Fatalf("AV 4.1 without AN after AN tools: %+v, want tools 4.1 kept", rep)
	}
	if ro := rollout(t, f.m, "tools"); ro.Versions["4.1"] != 1 || len(ro.UnknownApp) != 0 {
		t.Fatalf("tools rollout after AV without AN: versions %v unknown %v, want 4.1 counted as tools", ro.Versions, ro.UnknownApp)
	}

	// The sign-on's verified token says demo-pay, whatever AN said before.
	if up := f.m.OfferAttested(tid, "demo-pay", "2.0", f.clock.Now()); !strings.HasPrefix(up, "2.1:") {
		t.Fatalf("attested demo-pay 2.0: offer %q, want demo-pay 2.1", up)
	}
	if rep, _ := f.m.ReportOf(tid); rep.App != "demo-pay" || !rep.AppAttested || rep.Version != "2.0" {
		t.Fatalf("attested sign-on: %+v, want demo-pay 2.0 attested", rep)
	}
	// An echo's AN naming tools is the terminal's word against the attestation:
	// demo-pay stays recorded, and tools 5.0 is not offered.
	if up := f.m.Offer(tid, "tools", "2.0", f.clock.Now()); strings.HasPrefix(up, "5.0:") {
		t.Fatalf("AN tools after an attested demo-pay: offer %q, want no tools release", up)
	}
	f.m.Offer(tid, "", "2.0", f.clock.Now())
	f.close()
	f.open()
	if rep, _ := f.m.ReportOf(tid); rep.App != "demo-pay" || !rep.AppAttested {
		t.Fatalf("after AN tools, an AV alone and a restart: %+v, want demo-pay attested", rep)
	}
	if ro := rollout(t, f.m, "pay"); ro.Versions["2.0"] != 1 || ro.OtherApp != 0 {
		t.Fatalf("pay rollout: versions %v other %d, want the terminal on 2.0", ro.Versions, ro.OtherApp)
	}
	if ro := rollout(t, f.m, "tools"); ro.OtherApp != 1 || len(ro.Versions) != 0 {
		t.Fatalf("tools rollout: versions %v other %d, want it running another application", ro.Versions, ro.OtherApp)
	}
	// A later attested sign-on naming tools replaces it.
	f.m.OfferAttested(tid, "tools", "5.0", f.clock.Now())
	if rep, _ := f.m.ReportOf(tid); rep.App != "tools" || !rep.AppAttested || rep.Version != "5.0" {
		t.Fatalf("attested tools 5.0: %+v", rep)
	}
}

// TestSuspendedTerminalCannotDownload: a download token stands for its terminal
// only while the terminal could sign on. Once the terminal is suspended (by an
// operator, or by the switch itself: a wave of declines, a device mismatch), or its
// merchant frozen, the token it was given before is refused (403) for downloads
// and reports, over loopback HTTPS; once resumed, the same token works again.
// Before, such a token downloaded the package, and wrote reports, until it expired
// (apps.token_ttl, 24 h): a stolen terminal suspended for it kept fetching the
// acquirer's application.
func TestSuspendedTerminalCannotDownload(t *testing.T) {
	f := newFixture(t, 2)
	f.upload("2.1", blob("2.1", 100))
	f.publish("north", "2.1", 100, "")
	srv := httptest.NewTLSServer(f.m.Handler())
	defer srv.Close()
	t0, t1 := f.tids[0], f.tids[1]
	_, sum0, tok0 := offerOf(t, f.m.Offer(t0, "", "1.0", f.clock.Now()))
	_, sum1, tok1 := offerOf(t, f.m.Offer(t1, "", "1.0", f.clock.Now()))
	if r := get(t, srv, t0, sum0, tok0, ""); r.StatusCode != 200 {
		t.Fatalf("active terminal's download: %s", r.Status)
	}
	report := func(tid, sum, tok string) int {
		req, _ := http.NewRequest("POST", srv.URL+"/apps/v1/report/"+tid,
			strings.NewReader(fmt.Sprintf(`{"sha256":%q,"version":"2.1","status":"installed"}`, sum)))
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}

	f.approve(f.reg.RequestChange(alice, registry.Change{Op: registry.OpTerminalSuspend, Target: t0, Reason: "reported stolen"}))
	r := get(t, srv, t0, sum0, tok0, "")
	body, _ := io.ReadAll(r.Body)
	r.Body.Close()
	if r.StatusCode != http.StatusForbidden || !strings.Contains(string(body), "suspended") {
		t.Fatalf("suspended terminal's download with its earlier token: %s %s, want 403 naming the suspension", r.Status, body)
	}
	if code := report(t0, sum0, tok0); code != http.StatusForbidden {
		t.Fatalf("suspended terminal's report: %d, want 403", code)
	}
	if rep, _ := f.m.ReportOf(t0); rep.Version != "1.0" {
		t.Fatalf("suspended terminal's report recorded: version %q, want 1.0 still", rep.Version)
	}
	if r := get(t, srv, t1, sum1, tok1, ""); r.StatusCode != 200 {
		t.Fatalf("another terminal's download: %s", r.Status)
	}

	f.approve(f.reg.RequestChange(alice, registry.Change{Op: registry.OpTerminalResume, Target: t0, Reason: "found"}))
	if r := get(t, srv, t0, sum0, tok0, ""); r.StatusCode != 200 {
		t.Fatalf("resumed terminal's download: %s, want 200", r.Status)
	}

	f.approve(f.reg.RequestChange(alice, registry.Change{Op: registry.OpMerchantFreeze, Target: mid, Reason: "fraud review"}))
	if r := get(t, srv, t1, sum1, tok1, ""); r.StatusCode != http.StatusForbidden {
		t.Fatalf("frozen merchant's terminal's download: %s, want 403", r.Status)
	}
}

// TestStaleRefreshDoesNotUndoAWithdrawal: a refresh that read the approved changes
// just before a withdrawal was approved, and finishes after the refresh the
// approval made, does not put its older resolution back: the withdrawn package
// stays refused (410) and offered to nobody. Before, the last refresh to finish
// won, whatever it had read: the periodic refresh (apps.refresh_interval) racing
// an approval offered and served the withdrawn release again, and held the
// terminals to the group's old minimum, until the next refresh.
func TestStaleRefreshDoesNotUndoAWithdrawal(t *testing.T) {
	f := newFixture(t, 1)
	f.upload("2.0", blob("2.0", 100))
	f.publish("north", "2.0", 100, "")
	srv := httptest.NewTLSServer(f.m.Handler())
	defer srv.Close()
	tid := f.tids[0]
	_, sum, tok := offerOf(t, f.m.Offer(tid, "", "1.0", f.clock.Now()))
	c, err := f.m.RequestWithdraw(alice, WithdrawRequest{Group: "north", Reason: "crash on boot"})
	if err != nil {
		t.Fatal(err)
	}
	// The periodic refresh reads the approved changes (2.0 current), then stops
	// until released.
	entered, release := make(chan struct{}), make(chan struct{})
	var armed atomic.Bool
	armed.Store(true)
	hook := func() {
		if armed.CompareAndSwap(true, false) {
			close(entered)
			<-release
		}
	}
	f.changesHook.Store(&hook)
	done := make(chan error, 1)
	go func() { done <- f.m.Refresh() }()
	<-entered
	f.approve(c, nil) // its own refresh runs to the end
	if r := get(t, srv, tid, sum, tok, ""); r.StatusCode != http.StatusGone {
		t.Fatalf("withdrawn package downloaded after the approval: %s, want 410", r.Status)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if r := get(t, srv, tid, sum, tok, ""); r.StatusCode != http.StatusGone {
		t.Fatalf("withdrawn package downloaded after a refresh that read the state before the withdrawal: %s, want 410", r.Status)
	}
	if v := f.m.Offer(tid, "", "1.0", f.clock.Now()); v != "" {
		t.Fatalf("withdrawn release offered again: %q", v)
	}
}
