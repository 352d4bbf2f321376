package api_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/switchyard/switchyard/switch/admin"
	"github.com/switchyard/switchyard/switch/api"
	"github.com/switchyard/switchyard/switch/journal"
)

// TestJournalQueryGoesPastDamage: GET /api/v1/journal over a journal whose log has a
// byte flipped in one record's frame sends every other record, then a last line
// naming the damaged one (api.UnreadableLine: RRN, segment file, offset). Until the
// fifteenth release the answer ended at the damaged record with an error line.
func TestJournalQueryGoesPastDamage(t *testing.T) {
	dir := t.TempDir()
	db := openDB(t, filepath.Join(dir, "db"))
	j, err := journal.Open(db, journal.Options{Dir: filepath.Join(dir, "log"), NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	at := time.Date(2026, 12, 2, 2, 0, 0, 0, time.UTC)
	var rrns []string
	for i := range 4 {
		rrn := fmt.Sprintf("00000000010%d", i)
		rrns = append(rrns, rrn)
		r := &journal.Record{RRN: rrn, Received: at.Add(time.Duration(i) * time.Second), MTI: "0200", Type: "purchase", TID: "T0000001",
			MID: "000000000000001", STAN: fmt.Sprintf("%06d", i+1), DE7: "1202020000", Amount: 1000, Currency: "156", RC: "00"}
		r.AddEvent(journal.StateReceived, r.Received, "")
		if err := j.Write(context.Background(), r, true, true); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := j.LastReceived(); err != nil { // indexed: read from the log from now on
		t.Fatal(err)
	}
	seg := filepath.Join(dir, "log", "00000001.seg")
	b, err := os.ReadFile(seg)
	if err != nil {
		t.Fatal(err)
	}
	off := bytes.Index(b, []byte(rrns[1]))
	f, err := os.OpenFile(seg, os.O_RDWR, 0)
	if err != nil || off < 0 {
		t.Fatal(off, err)
	}
	if _, err := f.WriteAt([]byte{b[off+3] ^ 0x04}, int64(off+3)); err != nil {
		t.Fatal(err)
	}
	f.Close()

	auth, err := admin.NewAuthenticator([]admin.Token{{Token: "tok", Principal: admin.Principal{Name: "op", Role: admin.RoleAdmin}}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api.New(api.Options{Auth: auth, Journal: j, Location: time.UTC}))
	defer srv.Close()
	req, _ := http.NewRequest("GET", srv.URL+"/api/v1/journal?limit=0", nil)
	req.Header.Set("Authorization", "Bearer tok")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got []string
	var last api.UnreadableLine
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		var r journal.Record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatal(err)
		}
		if r.RRN != "" {
			got = append(got, r.RRN)
			continue
		}
		if err := json.Unmarshal(sc.Bytes(), &last); err != nil {
			t.Fatal(err)
		}
	}
	if want := []string{rrns[0], rrns[2], rrns[3]}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("records %v, want %v", got, want)
	}
	if last.Error == "" || len(last.Unreadable) != 1 || last.Unreadable[0].RRN != rrns[1] || last.Unreadable[0].File != seg || last.Unreadable[0].Offset >= int64(off) {
		t.Errorf("last line %+v, want record %s named in %s", last, rrns[1], seg)
	}
}
