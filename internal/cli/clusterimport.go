package cli

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/rs/zerolog"

	"github.com/switchyard/switchyard/internal/cli/kit"
	"github.com/switchyard/switchyard/switch/api"
	"github.com/switchyard/switchyard/switch/cluster/cjournal"
	"github.com/switchyard/switchyard/switch/journal"
	"github.com/switchyard/switchyard/switch/saf"
	"github.com/switchyard/switchyard/switch/server"
)

// importChunk bounds one request of an import, as JSON (the records in base64, the
// batch closes): the API takes 8 MB a request; 1 MB is about twelve stream messages
// of 64 KB, which the node publishes as fast as the slowest running node applies
// them (cjournal.Import).
var importChunk = 1 << 20

// importRequestTimeout bounds one request of an import. The node answers once
// every running node has applied what it published, and stops by itself when an
// applier stands still for two minutes; an applier that moves, however slowly,
// keeps it going (a node catching up after a restart).
const importRequestTimeout = 30 * time.Minute

// importReportEvery is how often a run says how far it went.
const importReportEvery = 5 * time.Second

// runClusterImport reads a stopped single switch's data directory and hands its
// journal to a running node, in requests of up to importChunk, from after the last
// record the cluster holds of it.
func runClusterImport(env *Env, conn kit.Conn, dir string, asJSON bool) int {
	if dir == "" {
		return fail(env, "cluster import: --from DIR (the stopped single switch's data directory) is required")
	}
	if _, err := os.Stat(server.JournalDir(dir)); err != nil {
		return fail(env, "cluster import: %s is not a switch's data directory (no journal: %v)", dir, err)
	}
	db, err := server.OpenDB(dir, zerolog.Nop())
	if err != nil {
		return fail(env, "cluster import: %v (stop the single switch first)", err)
	}
	defer db.Close()
	if err := server.CheckSingleData(db, dir); err != nil {
		return fail(env, "cluster import: %v", err)
	}
	q, err := saf.Open(db, saf.Options{})
	if err != nil {
		return fail(env, "cluster import: %s: %v", dir, err)
	}
	owed := q.Len("")
	_ = q.Close()
	if owed > 0 {
		return fail(env, "cluster import: the single switch in %s still owes %d store-and-forward advice(s): "+
			"start it, let its queue drain (switchyard_saf_queued 0), stop it, and import again", dir, owed)
	}
	source, err := importSource(db)
	if err != nil {
		return fail(env, "cluster import: %s: %v", dir, err)
	}
	j, err := journal.Open(db, journal.Options{Dir: server.JournalDir(dir)})
	if err != nil {
		return fail(env, "cluster import: %s: %v", dir, err)
	}
	defer j.Close()

	c := conn.Client()
	var st cjournal.ImportState
	if err := c.Do(env.Ctx, "GET", "/api/v1/cluster/import/journal", nil, &st); err != nil {
		return fail(env, "cluster import: %v", err)
	}
	if st.Messages > 0 && st.Source != source {
		return fail(env, "cluster import: the cluster holds an import of another single switch (%q, up to RRN %s); %s is %q: a cluster takes one switch's journal", st.Source, orDash(st.LastRRN), dir, source)
	}
	var total cjournal.ImportResult
	after, reported := st.LastRRN, time.Time{}
	send := func(body *api.JournalImport) error {
		body.Source, body.After = source, after
		var res cjournal.ImportResult
		// A request returns once every node has applied it: as long as the
		// appliers take, which a cluster under load makes longer.
		if err := c.DoWithin(env.Ctx, "POST", "/api/v1/cluster/import/journal", body, &res, importRequestTimeout); err != nil {
			return err
		}
		total.Records += res.Records
		total.Closes += res.Closes
		total.Messages += res.Messages
		total.LastRRN = res.LastRRN
		if len(res.AppliedBy) > 0 {
			total.AppliedBy = res.AppliedBy
		}
		after = res.LastRRN
		if !asJSON && res.Records > 0 && time.Since(reported) >= importReportEvery {
			fmt.Fprintf(env.Stderr, "imported %d records, up to RRN %s\n", total.Records, res.LastRRN)
			reported = time.Now()
		}
		return nil
	}
	// The batch closes first, in requests of their own (sent again by a run that
	// goes on: the nodes keep each terminal's latest), then the records after the
	// last one imported.
	var (
		body    api.JournalImport
		size    int
		sendErr error
	)
	flush := func() bool {
		if len(body.Records) == 0 && len(body.Closes) == 0 {
			return true
		}
		sendErr = send(&body)
		body, size = api.JournalImport{}, 0
		return sendErr == nil
	}
	err = j.BatchCloses(func(tid string, at time.Time) error {
		if size > importChunk && !flush() {
			return sendErr
		}
		body.Closes = append(body.Closes, api.ImportClose{TID: tid, At: at})
		size += len(tid) + 64 // {"tid":"...","at":"2006-01-02T15:04:05.999999999Z"},
		return nil
	})
	if err != nil && sendErr == nil {
		return fail(env, "cluster import: %s: read the batch closes: %v", dir, err)
	}
	if sendErr == nil && flush() {
		err = j.ScanFrom(env.Ctx, st.LastRRN, func(r *journal.Record) bool {
			if r.RRN == st.LastRRN {
				return true
			}
			b, err := r.AppendBinary(nil)
			if err != nil {
				sendErr = fmt.Errorf("encode record %s: %w", r.RRN, err)
				return false
			}
			n := base64.StdEncoding.EncodedLen(len(b)) + 3 // "...",
			if size+n > importChunk && !flush() {
				return false
			}
			body.Records = append(body.Records, b)
			size += n
			return true
		})
		if err == nil && sendErr == nil {
			flush()
		}
	}
	if sendErr != nil {
		err = sendErr
	}
	if err != nil {
		return fail(env, "cluster import: %v (imported %d records in this run; run it again to go on after RRN %s)", err, total.Records, orDash(after))
	}
	if total.LastRRN == "" {
		total.LastRRN = st.LastRRN
	}
	if asJSON {
		return printJSON(env, total)
	}
	already := ""
	if st.LastRRN != "" {
		already = fmt.Sprintf(" (the cluster held it up to RRN %s before this run)", st.LastRRN)
	}
	fmt.Fprintf(env.Stdout, "Imported %d records and %d batch closes in %d messages, up to RRN %s%s.\n",
		total.Records, total.Closes, total.Messages, orDash(total.LastRRN), already)
	if len(total.AppliedBy) > 0 {
		nodes := make([]string, len(total.AppliedBy))
		for i, n := range total.AppliedBy {
			nodes[i] = strconv.Itoa(n)
		}
		fmt.Fprintf(env.Stdout, "Applied by node(s) %s; a node not listed (down) applies them when it comes back.\n", strings.Join(nodes, ", "))
	}
	return 0
}

// keyImportSource is the Badger key of a single switch's identity for imports.
const keyImportSource = "sy/import-source"

// importSource returns the identity the import gives the single switch of db, made
// (random) and kept there at its first import: the cluster takes the import on only
// from the same switch, so that a run pointed at another switch's directory is
// refused rather than skipping the RRNs the cluster holds and reporting success.
func importSource(db *badger.DB) (string, error) {
	var id string
	err := db.View(func(txn *badger.Txn) error {
		item, err := txn.Get([]byte(keyImportSource))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		v, err := item.ValueCopy(nil)
		id = string(v)
		return err
	})
	if err != nil || id != "" {
		return id, err
	}
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	id = "single-" + hex.EncodeToString(b[:])
	if err := db.Update(func(txn *badger.Txn) error { return txn.Set([]byte(keyImportSource), []byte(id)) }); err != nil {
		return "", fmt.Errorf("keep the import's identity of the switch: %w", err)
	}
	if err := db.Sync(); err != nil {
		return "", fmt.Errorf("keep the import's identity of the switch: %w", err)
	}
	return id, nil
}
