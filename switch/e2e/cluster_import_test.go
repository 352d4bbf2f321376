package e2e

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/switchyard/switchyard/switch/journal"
	"github.com/switchyard/switchyard/switch/server"
)

// testImport: a stopped single switch's journal imported through node 1 while the
// cluster serves. The import returns only once every running node has applied it
// (its pace is the slowest applier's, so that no node falls behind the stream and
// answers 91): the tool says all three did, nodes 2 and 3 hold its last record as
// soon as it exits, without a wait, and a purchase on each is approved right after.
func (c *testCluster) testImport(t *testing.T) {
	c = c.rebind(t)
	dir := t.TempDir()
	db, err := server.OpenDB(dir, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	j, err := journal.Open(db, journal.Options{Dir: server.JournalDir(dir)})
	if err != nil {
		db.Close()
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	at := time.Now().UTC().Add(-48 * time.Hour).Truncate(time.Second)
	const n = 3000 // some twenty stream messages
	last := ""
	for k := range n {
		rrn, err := j.NextRRN()
		if err != nil {
			t.Fatal(err)
		}
		r := &journal.Record{RRN: rrn, Received: at.Add(time.Duration(k) * time.Second), MTI: "0200", Type: "purchase", TID: "IMPORT01",
			STAN: fmt.Sprintf("%06d", k%999999+1), DE7: at.Format("0102150405"), PANMasked: "622202******1234", Amount: 100, Currency: "156", RC: "00",
			Reason: strings.Repeat("x", 100)}
		r.AddEvent(journal.StateResponded, r.Received, "")
		if err := j.Write(ctx, r, true, false); err != nil {
			t.Fatal(err)
		}
		last = rrn
	}
	j.Close()
	db.Close()

	out, code := c.cliOn(1, tokAdmin, "cluster", "import", "--from", dir)
	if code != 0 || !strings.Contains(out, fmt.Sprintf("Imported %d records", n)) || !strings.Contains(out, "Applied by node(s) 1, 2, 3;") {
		t.Fatalf("cluster import through node 1: exit %d: %s; want %d records applied by nodes 1, 2, 3", code, out, n)
	}
	for _, nd := range c.nodes {
		status, body, err := nd.api("GET", "/api/v1/journal/"+last, tokOperator, nil)
		if err != nil || status != http.StatusOK {
			t.Fatalf("node %d, as the import returns: the last imported record %s: %d %s %v", nd.n, last, status, body, err)
		}
	}
	for n := 1; n <= 3; n++ {
		tx := probeTxn(fmt.Sprintf("LT0019%02d", 10+n), testPAN(950000+n), 1500)
		if r := c.purchaseOn(n, tx); r.RC != "00" {
			t.Fatalf("a purchase on node %d after the import: %s (%s)", n, r.RC, r.Reason)
		}
	}
}
