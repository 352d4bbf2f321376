package cli

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/rs/zerolog"

	"github.com/switchyard/switchyard/switch/admin"
	"github.com/switchyard/switchyard/switch/api"
	"github.com/switchyard/switchyard/switch/cluster/cjournal"
	"github.com/switchyard/switchyard/switch/journal"
	"github.com/switchyard/switchyard/switch/registry"
	"github.com/switchyard/switchyard/switch/saf"
	"github.com/switchyard/switchyard/switch/server"
)

// TestClusterImport runs `switchyard cluster import --from DIR` against the admin API
// (its real routes, a node that keeps what it is given as a cluster's import would):
// the batch closes and every record arrive once, in RRN order, over several requests;
// a run that fails part way says so and where it stands, and the next run goes on
// after the last record the node holds. A switch still running (its directory
// locked), a directory that is no switch's and a single switch that still owes
// store-and-forward advices are refused before anything is sent.
func TestClusterImport(t *testing.T) {
	dir := t.TempDir()
	db, j := openSingleJournal(t, dir)
	ctx := context.Background()
	at := time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC)
	const n = 60
	for k := range n {
		rrn, err := j.NextRRN()
		if err != nil {
			t.Fatal(err)
		}
		r := &journal.Record{RRN: rrn, Received: at.Add(time.Duration(k) * time.Second), MTI: "0200", Type: "purchase", TID: "T0000001",
			STAN: fmt.Sprintf("%06d", k+1), DE7: "1130090000", Amount: 100, Currency: "156", RC: "00", Reason: strings.Repeat("x", 200)}
		r.AddEvent(journal.StateResponded, r.Received, "")
		if err := j.Write(ctx, r, true, true); err != nil {
			t.Fatal(err)
		}
	}
	const terminals = 100 // their batch closes take requests of their own
	for k := range terminals {
		if err := j.CloseBatch(ctx, fmt.Sprintf("T%07d", k+1), at.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	j.Close()
	db.Close()

	// The node: it keeps the records as a cluster's import does (ascending, after
	// the last), and fails the third request of the first run.
	var (
		mu       sync.Mutex
		source   string
		last     string
		got      []string
		closes   int
		requests int
		failAt   = 5 // two requests of batch closes, two of records, then the failure
	)
	auth, err := admin.NewAuthenticator(api.DemoTokens())
	if err != nil {
		t.Fatal(err)
	}
	node := httptest.NewServer(api.New(api.Options{Auth: auth,
		ClusterImportState: func(context.Context) (any, error) {
			mu.Lock()
			defer mu.Unlock()
			return cjournal.ImportState{LastRRN: last, Source: source, Messages: uint64(requests)}, nil
		},
		ClusterImport: func(_ context.Context, b api.JournalImport) (any, error) {
			mu.Lock()
			defer mu.Unlock()
			requests++
			if requests == failAt {
				return nil, api.WithStatus(http.StatusServiceUnavailable, fmt.Errorf("no quorum"))
			}
			if source == "" {
				source = b.Source
			}
			if b.Source == "" || b.Source != source {
				return nil, api.WithStatus(http.StatusBadRequest, fmt.Errorf("the stream holds an import of another single switch (%q), not of %q", source, b.Source))
			}
			if b.After != last {
				return nil, api.WithStatus(http.StatusConflict, fmt.Errorf("the import stands at %q, the request comes after %q", last, b.After))
			}
			if len(b.Closes) > 0 && len(b.Records) > 0 {
				return nil, fmt.Errorf("batch closes and records in one request")
			}
			for _, raw := range b.Records {
				var r journal.Record
				if err := r.UnmarshalBinary(raw); err != nil {
					return nil, err
				}
				if r.RRN <= last {
					return nil, api.WithStatus(http.StatusBadRequest, fmt.Errorf("record %s: holds the import up to RRN %s already", r.RRN, last))
				}
				last = r.RRN
				got = append(got, r.RRN)
			}
			closes += len(b.Closes)
			return cjournal.ImportResult{Records: len(b.Records), Closes: len(b.Closes), Messages: 1, LastRRN: last, AppliedBy: []int{1, 3}}, nil
		}}))
	defer node.Close()
	vars := map[string]string{"SWITCHYARD_TOKEN": registry.DemoAdminToken}
	defer func(c int) { importChunk = c }(importChunk)
	importChunk = 4 << 10 // about 15 records a request

	code, _, errs := runCLI(t, vars, "cluster", "import", "--admin", node.URL, "--from", dir)
	if code == 0 || !strings.Contains(errs, "no quorum") || !strings.Contains(errs, "run it again to go on after RRN "+last) {
		t.Fatalf("a run that fails part way: exit %d: %s", code, errs)
	}
	if len(got) == 0 || len(got) == n {
		t.Fatalf("the failed run imported %d of %d records", len(got), n)
	}
	code, out, errs := runCLI(t, vars, "cluster", "import", "--admin", node.URL, "--from", dir)
	if code != 0 {
		t.Fatalf("the second run: exit %d: %s", code, errs)
	}
	if len(got) != n || closes != 2*terminals {
		t.Fatalf("the node holds %d records (want %d) and got %d batch closes (want %d: all of them each run)", len(got), n, closes, 2*terminals)
	}
	for k := 1; k < n; k++ {
		if got[k] <= got[k-1] {
			t.Fatalf("records out of order or twice: %s after %s", got[k], got[k-1])
		}
	}
	if !strings.Contains(out, fmt.Sprintf("up to RRN %s (the cluster held it up to RRN", got[n-1])) || !strings.Contains(out, "Applied by node(s) 1, 3;") {
		t.Fatalf("the second run's summary: %s", out)
	}

	// Another single switch's directory: it gets an identity of its own, and the
	// node refuses it.
	other := t.TempDir()
	odb, oj := openSingleJournal(t, other)
	if _, err := writeOne(ctx, oj, at); err != nil {
		t.Fatal(err)
	}
	oj.Close()
	odb.Close()
	refused := func(what, from, want string) {
		t.Helper()
		code, _, errs := runCLI(t, vars, "cluster", "import", "--admin", node.URL, "--from", from)
		if code == 0 || !strings.Contains(errs, want) {
			t.Fatalf("%s: exit %d: %s; want a failure saying %q", what, code, errs, want)
		}
	}
	refused("another switch's directory", other, "another single switch")

	// Refused before anything is sent.
	before := requests
	refused("no switch's directory", filepath.Join(dir, "nothing"), "is not a switch's data directory")
	db, err = server.OpenDB(dir, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	refused("a directory in use", dir, "stop the single switch first")
	q, err := saf.Open(db, saf.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := q.Enqueue(&saf.Item{Issuer: "demo", MTI: "0420", RRN: got[0], Fields: map[int]string{11: "000001"}, Created: at}); err != nil {
		t.Fatal(err)
	}
	q.Close()
	db.Close()
	refused("advices owed", dir, "still owes 1 store-and-forward advice")
	if requests != before {
		t.Fatalf("refused runs sent %d requests", requests-before)
	}
}

// writeOne journals one final purchase in j.
func writeOne(ctx context.Context, j *journal.Store, at time.Time) (string, error) {
	rrn, err := j.NextRRN()
	if err != nil {
		return "", err
	}
	r := &journal.Record{RRN: rrn, Received: at, MTI: "0200", Type: "purchase", TID: "T0000001", STAN: "000001", DE7: "1130090000", RC: "00"}
	r.AddEvent(journal.StateResponded, at, "")
	return rrn, j.Write(ctx, r, true, true)
}

// openSingleJournal opens a single switch's data directory dir (creating it) and its
// journal, as the switch does.
func openSingleJournal(t *testing.T, dir string) (*badger.DB, *journal.Store) {
	t.Helper()
	db, err := server.OpenDB(dir, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	j, err := journal.Open(db, journal.Options{Dir: server.JournalDir(dir)})
	if err != nil {
		db.Close()
		t.Fatal(err)
	}
	return db, j
}
