package server

import (
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/switch/config"
	"github.com/switchyard/switchyard/switch/issuersim"
	"github.com/switchyard/switchyard/switch/message"
	"github.com/switchyard/switchyard/switch/registry"
	"github.com/switchyard/switchyard/switch/saf"
)

// TestParkedAdviceRequeueResolveAPI: an issuer (the simulator, over loopback TCP)
// answers the 0420 of a voided purchase without DE 39, and the switch parks it
// (saf.park_after 1). Over the admin API (loopback HTTP):
//   - GET /api/v1/saf/parked shows it with its card masked (first 6, last 4) and
//     none of its fields;
//   - bad requests are refused with their status: a reviewer (403), an id that is no
//     number (400), an unknown id (404), a resolve without a note (400);
//   - the issuer fixed, an operator requeues it (200): the simulator books the
//     reversal, the parked list empties, the oplog records saf.requeue with the
//     operator; a second requeue is a conflict (409);
//   - a second voided purchase's 0420, parked, is resolved with a note: the oplog
//     records saf.resolve with the note, and the issuer never gets it;
//   - GET /api/v1/saf/parked?state=resolved and ?state=requeued (any reader) list
//     the records of the two actions (who, when, the note, where the repeat went,
//     the card masked, no fields), by issuer and paged by after and limit; a state
//     not known, a limit out of bounds, an after that is no number are 400.
func TestParkedAdviceRequeueResolveAPI(t *testing.T) {
	sim, s := simSwitchWith(t, issuersim.Faults{}, 10*time.Second, nil, func(c *config.Config) { c.SAF.ParkAfter = 1 })
	tc := dial(t, s, "ascii", message.DialectASCII)
	client := &http.Client{Timeout: 10 * time.Second}
	call := func(method, path, token, body string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(method, "http://"+s.AdminAddr()+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	const operator, reviewer = registry.DemoOperatorToken, registry.DemoReviewerToken
	parked := func() []ParkedAdvice {
		t.Helper()
		code, body := call("GET", "/api/v1/saf/parked?issuer=sim", operator, "")
		var out []ParkedAdvice
		if err := json.Unmarshal([]byte(body), &out); code != http.StatusOK || err != nil {
			t.Fatalf("GET /api/v1/saf/parked: %d %v %s", code, err, body)
		}
		if strings.Contains(body, "fields") || strings.Contains(body, "4111111111111111") {
			t.Errorf("the parked list shows an advice's fields or its card: %s", body)
		}
		return out
	}
	waitParked := func(n int64) ParkedAdvice {
		t.Helper()
		for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			if st := s.Queue.IssuerStats()["sim"]; st != nil && st.Parked.Load() == n && s.Queue.Len("sim") == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("advice %d not parked", n)
			}
		}
		p := parked()
		if len(p) != 1 {
			t.Fatalf("parked %+v, want one advice", p)
		}
		return p[0]
	}
	sale := voidedSale(t, tc, sim, issuersim.Faults{AdviceNoRC: 1})
	adv := waitParked(1)
	if adv.RRN != sale.RRN || adv.MTI != "0420" || adv.PAN != "411111******1111" || adv.Issuer != "sim" || adv.Tries != 1 || adv.Parked.IsZero() {
		t.Errorf("parked advice %+v, want the 0420 of %s with card 411111******1111", adv, sale.RRN)
	}
	id := "/api/v1/saf/parked/" + strconv.FormatUint(adv.ID, 10)
	for _, c := range []struct {
		path, token, body string
		want              int
	}{
		{id + "/requeue", reviewer, "", http.StatusForbidden},
		{id + "/resolve", reviewer, `{"note":"x"}`, http.StatusForbidden},
		{"/api/v1/saf/parked/abc/requeue", operator, "", http.StatusBadRequest},
		{"/api/v1/saf/parked/987654321/requeue", operator, "", http.StatusNotFound},
		{"/api/v1/saf/parked/987654321/resolve", operator, `{"note":"x"}`, http.StatusNotFound},
		{id + "/resolve", operator, `{"note":"  "}`, http.StatusBadRequest},
		{id + "/resolve", operator, ``, http.StatusBadRequest},
	} {
		if code, body := call("POST", c.path, c.token, c.body); code != c.want || !strings.Contains(body, `"error"`) {
			t.Errorf("POST %s %s: %d %s, want %d with an error", c.path, c.body, code, body, c.want)
		}
	}
	sim.SetFaults(issuersim.Faults{})
	code, body := call("POST", id+"/requeue", operator, "")
	var res ParkedActionResult
	if err := json.Unmarshal([]byte(body), &res); code != http.StatusOK || err != nil || res.Action != "requeue" || res.Requeued == 0 || res.OplogSeq == 0 {
		t.Fatalf("requeue: %d %v %s", code, err, body)
	}
	for deadline := time.Now().Add(15 * time.Second); !sim.Ledger()[sale.RRN].Reversed || s.Queue.Len("sim") != 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the requeued reversal was not booked: %+v", sim.Ledger()[sale.RRN])
		}
	}
	if p := parked(); len(p) != 0 {
		t.Errorf("parked after the requeue: %+v", p)
	}
	if code, body := call("POST", id+"/requeue", operator, ""); code != http.StatusConflict || !strings.Contains(body, "requeued by") {
		t.Errorf("second requeue: %d %s, want 409 naming who requeued it", code, body)
	}
	sale2 := voidedSale(t, tc, sim, issuersim.Faults{AdviceNoRC: 1})
	adv2 := waitParked(2)
	const note = "issuer confirmed by phone: reversal booked on their side, ticket 4711"
	code, body = call("POST", "/api/v1/saf/parked/"+strconv.FormatUint(adv2.ID, 10)+"/resolve", operator, `{"note":"`+note+`"}`)
	if code != http.StatusOK || !strings.Contains(body, note) {
		t.Fatalf("resolve: %d %s", code, body)
	}
	if p := parked(); len(p) != 0 {
		t.Errorf("parked after the resolve: %+v", p)
	}
	if e := sim.Ledger()[sale2.RRN]; e.Reversed {
		t.Errorf("the resolved advice reached the issuer: %+v", e)
	}
	// The records of the actions, for an auditor (any reader): who, when, why,
	// the card masked, never the advice's fields.
	acted := func(query string) []ParkedActionRecord {
		t.Helper()
		code, body := call("GET", "/api/v1/saf/parked?"+query, reviewer, "")
		var out []ParkedActionRecord
		if err := json.Unmarshal([]byte(body), &out); code != http.StatusOK || err != nil {
			t.Fatalf("GET /api/v1/saf/parked?%s: %d %v %s", query, code, err, body)
		}
		if strings.Contains(body, "fields") || strings.Contains(body, "4111111111111111") {
			t.Errorf("the list of actions shows an advice's fields or its card: %s", body)
		}
		return out
	}
	if r := acted("state=resolved&issuer=sim"); len(r) != 1 || r[0].ID != adv2.ID || r[0].Action != "resolve" || r[0].By == "" || r[0].At.IsZero() ||
		r[0].Note != note || r[0].Advice.PAN != "411111******1111" || r[0].Advice.RRN != sale2.RRN {
		t.Errorf("resolved: %+v, want the resolve of %d with its note and the card masked", r, adv2.ID)
	}
	if r := acted("state=requeued"); len(r) != 1 || r[0].ID != adv.ID || r[0].Requeued != res.Requeued || r[0].By != res.By {
		t.Errorf("requeued: %+v, want the requeue of %d, requeued as %d by %s", r, adv.ID, res.Requeued, res.By)
	}
	if r := acted("state=resolved&issuer=other"); len(r) != 0 {
		t.Errorf("resolved for another issuer: %+v", r)
	}
	if r := acted("state=resolved&after=" + strconv.FormatUint(adv2.ID, 10)); len(r) != 0 {
		t.Errorf("resolved after the last: %+v", r)
	}
	if r := acted("state=requeued&limit=1"); len(r) != 1 {
		t.Errorf("requeued, one at a time: %+v", r)
	}
	for _, q := range []string{"state=deleted", "state=resolved&limit=10001", "state=resolved&limit=-1", "state=resolved&after=x"} {
		if code, body := call("GET", "/api/v1/saf/parked?"+q, reviewer, ""); code != http.StatusBadRequest || !strings.Contains(body, `"error"`) {
			t.Errorf("GET /api/v1/saf/parked?%s: %d %s, want 400", q, code, body)
		}
	}
	for action, reason := range map[string]string{"saf.requeue": "", "saf.resolve": note} {
		es, err := s.Registry.Oplog(registry.OplogFilter{Action: action})
		if err != nil || len(es) != 1 || es[0].Actor == "" || es[0].Role != "operator" || es[0].TargetType != "saf-advice" || es[0].Reason != reason {
			t.Errorf("oplog %s: %+v %v", action, es, err)
		}
	}
}

// TestRequeueRefusedAfterReversal: a stand-in or completion advice (0220) parked
// while its transaction was reversed since is not requeued (409): sent after its
// reversal, the issuer would book it and the card stay charged. It stays parked, for
// an operator to resolve.
func TestRequeueRefusedAfterReversal(t *testing.T) {
	sim, s := simSwitchWith(t, issuersim.Faults{}, 10*time.Second, nil, func(c *config.Config) { c.SAF.ParkAfter = 1 })
	tc := dial(t, s, "ascii", message.DialectASCII)
	sale := voidedSale(t, tc, sim, issuersim.Faults{AdviceNoRC: 1}) // its 0420 parks
	rev, err := s.Journal.Get(sale.RRN)
	if err != nil || !rev.Reversed() {
		t.Fatalf("the voided sale's record: %+v %v, want it reversed", rev, err)
	}
	adv := &saf.Item{Issuer: "sim", MTI: "0220", RRN: sale.RRN, Reason: "completion",
		Fields: map[int]string{3: rev.ProcCode, 4: "000000001000", 37: sale.RRN, 41: rev.TID, 42: rev.MID, 49: rev.Currency}}
	if err := s.Queue.Enqueue(adv); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(15 * time.Second); s.Queue.IssuerStats()["sim"].Parked.Load() != 2 || s.Queue.Len("sim") != 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the 0220 answered without DE 39 was not parked")
		}
	}
	sim.SetFaults(issuersim.Faults{})
	req, _ := http.NewRequest("POST", "http://"+s.AdminAddr()+"/api/v1/saf/parked/"+strconv.FormatUint(adv.Seq, 10)+"/requeue", nil)
	req.Header.Set("Authorization", "Bearer "+registry.DemoOperatorToken)
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusConflict || !strings.Contains(string(b), "reversed since") {
		t.Fatalf("requeue of a 0220 whose transaction was reversed: %d %s, want 409", resp.StatusCode, b)
	}
	p, err := s.Queue.Parked("sim")
	if err != nil || len(p) != 2 || s.Queue.Len("sim") != 0 {
		t.Errorf("parked %d (%v), queued %d: want both still parked, nothing queued", len(p), err, s.Queue.Len("sim"))
	}
}
