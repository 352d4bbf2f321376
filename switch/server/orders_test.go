package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"

	"github.com/switchyard/switchyard/internal/statelog"
	"github.com/switchyard/switchyard/internal/syncbuf"
	"github.com/switchyard/switchyard/switch/config"
	"github.com/switchyard/switchyard/switch/journal"
	"github.com/switchyard/switchyard/switch/pipeline"
	"github.com/switchyard/switchyard/switch/qr"
	"github.com/switchyard/switchyard/switch/qrorder"
	"github.com/switchyard/switchyard/switch/wallet"
)

// TestOrderDeskNoCatchUp: a cluster node that does not have an order and cannot
// catch up with the cluster's book (no quorum) does not say the order is not found,
// which the network (404 ORDER_NOT_FOUND) and the terminal (25) would take as final:
// the notification is answered 500, for the network to repeat, and the inquiry is
// an error (96).
func TestOrderDeskNoCatchUp(t *testing.T) {
	db, err := badger.Open(badger.DefaultOptions(t.TempDir()).WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	noQuorum := errors.New("no quorum")
	book, err := qrorder.NewBook(db, qrorder.Options{Log: &statelog.Memory{},
		CatchUp: func(context.Context, statelog.Replica) error { return noQuorum }})
	if err != nil {
		t.Fatal(err)
	}
	secret := []byte("0123456789abcdef0123")
	d := &orderDesk{book: book, now: time.Now, secret: secret, log: zerolog.Nop(),
		cfg: config.QR{Connectors: []config.QRConnector{{ID: "wechat", Network: "wechat"}}}}

	body, _ := json.Marshal(wallet.Notification{Network: "wechat", OrderID: "100000000001", TransactionID: "TX1", TotalFee: 100})
	r := httptest.NewRequest(http.MethodPost, NotifyPath, bytes.NewReader(body))
	r.Header.Set(wallet.NotifySignatureHeader, wallet.Sign(secret, body))
	w := httptest.NewRecorder()
	d.notify(w, r)
	var res wallet.Result
	_ = json.Unmarshal(w.Body.Bytes(), &res)
	if w.Code != http.StatusInternalServerError || res.ErrCode != "SYSTEMERROR" {
		t.Errorf("notification: %d %s, want 500 SYSTEMERROR", w.Code, res.ErrCode)
	}

	_, ok, err := d.Order(t.Context(), "100000000001", "T0000001", "000000000000001")
	if err == nil || errors.Is(err, qrorder.ErrNotFound) || !errors.Is(err, qrorder.ErrNotCaughtUp) || !errors.Is(err, noQuorum) {
		t.Errorf("inquiry: ok %v, err %v; want an error (96) wrapping ErrNotCaughtUp, not not found (25)", ok, err)
	}
}

// failingJournal fails its first fail writes, and keeps what it was given.
type failingJournal struct {
	fail int
	got  []pipeline.OrderPayment
}

func (j *failingJournal) RecordOrderPayment(_ context.Context, op pipeline.OrderPayment) (*journal.Record, error) {
	j.got = append(j.got, op)
	if len(j.got) <= j.fail {
		return nil, errors.New("journal unavailable")
	}
	return &journal.Record{RRN: op.RRN}, nil
}

// TestOrderDeskRepeatJournalsTheBooksPayment: the first notification of a payment
// is taken by the book and its journal write fails (500: the network repeats it);
// the repeat, of the same transaction, says another amount and currency. What is
// journaled is the payment the book took (2500 in yuan, the order paid), not the
// repeat's figures, which once went into the journal as an approved purchase of
// the order while the order said 2500.
func TestOrderDeskRepeatJournalsTheBooksPayment(t *testing.T) {
	_, book := testBook(t)
	now := time.Now()
	if err := book.Create(t.Context(), qrorder.Order{ID: "100000000007", TID: "T0000001", MID: "000000000000001", Currency: "156",
		Amount: 2500, Created: now, Expires: now.Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	secret := []byte("0123456789abcdef0123")
	j := &failingJournal{fail: 1}
	d := &orderDesk{book: book, now: time.Now, secret: secret, log: zerolog.Nop(), pipe: j,
		cfg: config.QR{Connectors: []config.QRConnector{{ID: "wechat", Network: "wechat"}}}}
	send := func(n wallet.Notification) int {
		body, _ := json.Marshal(n)
		r := httptest.NewRequest(http.MethodPost, NotifyPath, bytes.NewReader(body))
		r.Header.Set(wallet.NotifySignatureHeader, wallet.Sign(secret, body))
		w := httptest.NewRecorder()
		d.notify(w, r)
		return w.Code
	}
	if code := send(wallet.Notification{Network: "wechat", OrderID: "100000000007", TransactionID: "TX7", TotalFee: 2500}); code != http.StatusInternalServerError {
		t.Fatalf("first notification, journal failing: HTTP %d, want 500", code)
	}
	if code := send(wallet.Notification{Network: "wechat", OrderID: "100000000007", TransactionID: "TX7", TotalFee: 1, Currency: "840"}); code != http.StatusOK {
		t.Fatalf("repeat: HTTP %d, want 200", code)
	}
	if len(j.got) != 2 {
		t.Fatalf("journal asked %d times", len(j.got))
	}
	if op := j.got[1]; op.Amount != 2500 || op.Currency != "156" || op.Late {
		t.Fatalf("the repeat journaled amount %d currency %s late %v; want the book's payment, 2500 in 156, paid", op.Amount, op.Currency, op.Late)
	}
	if o, err := book.Get("100000000007"); err != nil || o.State != qrorder.Paid || o.PaidAmount != 2500 {
		t.Fatalf("order %+v %v", o, err)
	}
}

// TestNotificationsCounted: every notification is counted by network and outcome
// in switchyard_qr_notifications_total (paid, a repeat, another transaction on the
// paid order, a late one, an unknown order, a bad signature), and the payments the
// switch leaves to the network to give back (an unknown order's, another payer's)
// are logged. Notifications were neither counted nor, for those two, logged.
func TestNotificationsCounted(t *testing.T) {
	_, book := testBook(t)
	now := time.Now()
	for id, expires := range map[string]time.Time{"100000000011": now.Add(time.Minute), "100000000012": now.Add(-time.Second)} {
		if err := book.Create(t.Context(), qrorder.Order{ID: id, TID: "T0000001", MID: "000000000000001", Currency: "156",
			Amount: 2500, Created: now.Add(-time.Minute), Expires: expires}); err != nil {
			t.Fatal(err)
		}
	}
	secret := []byte("0123456789abcdef0123")
	var logs bytes.Buffer
	notified := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "switchyard_qr_notifications_total"}, []string{"network", "outcome"})
	d := &orderDesk{book: book, now: time.Now, secret: secret, log: zerolog.New(&logs), pipe: &failingJournal{}, notified: notified,
		cfg: config.QR{Connectors: []config.QRConnector{{ID: "wechat", Network: "wechat"}}}}
	send := func(n wallet.Notification, sig string) int {
		body, _ := json.Marshal(n)
		r := httptest.NewRequest(http.MethodPost, NotifyPath, bytes.NewReader(body))
		if sig == "" {
			sig = wallet.Sign(secret, body)
		}
		r.Header.Set(wallet.NotifySignatureHeader, sig)
		w := httptest.NewRecorder()
		d.notify(w, r)
		return w.Code
	}
	paid := wallet.Notification{Network: "wechat", OrderID: "100000000011", TransactionID: "TX11", TotalFee: 2500}
	send(paid, "")
	send(paid, "")
	other := paid
	other.TransactionID = "TX11B"
	send(other, "")
	send(wallet.Notification{Network: "wechat", OrderID: "100000000012", TransactionID: "TX12", TotalFee: 2500}, "")
	if code := send(wallet.Notification{Network: "wechat", OrderID: "100000000099", TransactionID: "TX99", TotalFee: 700}, ""); code != http.StatusNotFound {
		t.Fatalf("unknown order: HTTP %d", code)
	}
	send(paid, "00")
	for _, c := range []struct {
		network, outcome string
	}{{"wechat", notePaid}, {"wechat", noteRepeat}, {"wechat", noteOtherTxn}, {"wechat", noteLate}, {"wechat", noteNotFound}, {"", noteBadSig}} {
		if n := testutil.ToFloat64(notified.WithLabelValues(c.network, c.outcome)); n != 1 {
			t.Errorf("switchyard_qr_notifications_total{network=%q,outcome=%q} = %v, want 1", c.network, c.outcome, n)
		}
	}
	for _, want := range []string{"TX11B", "TX99"} {
		if !bytes.Contains(logs.Bytes(), []byte(want)) {
			t.Errorf("the payment %s left to the network is not logged: %s", want, logs.String())
		}
	}
}

// TestOrdersOfferOnlyWalletConnectors: a merchant-presented payment goes back to
// its network (a late one's refund, a void, a refund) through its connector's wallet
// API: the store-and-forward queue delivers a reversal to a wallet connector by its
// ID. A connector that is an ISO 8583 issuer link (UnionPay codes in DE 2, `issuer:
// bank-a`) has no such API, and no sender under its ID: an order's code offered it
// (a template for it), and a payment notified through it was journaled with the
// connector's ID as its issuer, its refund queued where nothing delivers it. The code
// now offers the wallet connectors only, and a notification of a network without one
// is refused, the order left open.
func TestOrdersOfferOnlyWalletConnectors(t *testing.T) {
	_, book := testBook(t)
	secret := []byte("0123456789abcdef0123")
	j := &failingJournal{}
	d := &orderDesk{book: book, now: time.Now, secret: secret, log: zerolog.Nop(), pipe: j,
		cfg: config.QR{Orders: config.QROrders{TTL: config.Duration(time.Minute), Country: "CN"}, Connectors: []config.QRConnector{
			{ID: "unionpay", Network: "unionpay", Issuer: "bank-a", GUID: config.DefaultGUID("unionpay")},
			{ID: "wechat", Network: "wechat", URL: "http://127.0.0.1:1", GUID: config.DefaultGUID("wechat")},
		}}}
	st, err := d.NewOrder(t.Context(), pipeline.OrderRequest{ID: "100000000021", TID: "T0000001", MID: "000000000000001", Currency: "156", Amount: 900})
	if err != nil {
		t.Fatal(err)
	}
	p, err := qr.Decode(st.Payload)
	if err != nil {
		t.Fatal(err)
	}
	if got := p.Sub("26", "00"); got != config.DefaultGUID("wechat") {
		t.Errorf("ID 26 is %q, want the WeChat Pay connector's template first", got)
	}
	if got := p.Get("27"); got != "" {
		t.Errorf("the code offers a second network (ID 27 %q): the ISO 8583 connector", got)
	}
	body, _ := json.Marshal(wallet.Notification{Network: "unionpay", OrderID: "100000000021", TransactionID: "TX21", TotalFee: 900})
	r := httptest.NewRequest(http.MethodPost, NotifyPath, bytes.NewReader(body))
	r.Header.Set(wallet.NotifySignatureHeader, wallet.Sign(secret, body))
	w := httptest.NewRecorder()
	d.notify(w, r)
	if w.Code != http.StatusBadRequest || len(j.got) != 0 {
		t.Fatalf("a notification through the ISO 8583 connector: HTTP %d, journaled %+v; want 400, nothing journaled", w.Code, j.got)
	}
	if o, err := book.Get("100000000021"); err != nil || o.State != qrorder.Open {
		t.Fatalf("order %+v %v, want open", o, err)
	}
}

// testBook is a single switch's QR order book in a Badger of its own, closed when
// the test ends.
func testBook(t *testing.T) (*badger.DB, *qrorder.Book) {
	t.Helper()
	db, err := badger.Open(badger.DefaultOptions(t.TempDir()).WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	book, err := qrorder.NewBook(db, qrorder.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return db, book
}

// TestRefusedNotificationsLogSampled: a flood of notifications with a bad signature
// posted to a demo switch's endpoint (which takes requests from outside) is counted
// whole but logged sampled, a burst a second, not a line each.
func TestRefusedNotificationsLogSampled(t *testing.T) {
	var logs syncbuf.Buffer
	s := start(t, demoConfig(t, t.TempDir()), &logs)
	client := http.Client{Timeout: 5 * time.Second}
	const n = 100
	for range n {
		req, err := http.NewRequest(http.MethodPost, "http://"+s.AdminAddr()+NotifyPath, strings.NewReader(`{"order_id":"1","transaction_id":"2"}`))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set(wallet.NotifySignatureHeader, "forged")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("forged notification: HTTP %d", resp.StatusCode)
		}
	}
	if got := testutil.ToFloat64(s.orders.notified.WithLabelValues("", noteBadSig)); got != n {
		t.Errorf("counted %v bad signatures, want %d", got, n)
	}
	// Each second's boundary inside the loop (a slow machine) lets one more burst through.
	if lines := strings.Count(logs.String(), "with a bad signature"); lines < 1 || lines > 3*adminRefusedBurst {
		t.Errorf("%d log lines for %d forged notifications, want 1 to %d", lines, n, 3*adminRefusedBurst)
	}
}

// TestOrderChineseMerchantName: the code of an order of a merchant named in Chinese
// decodes with a good CRC (qr.Decode checks it), carries the name in the language
// template (ID 64: 00 "ZH", 01 the name, cut to 25 characters between characters,
// four-byte ones too) and keeps ID 59 in the common character set: the merchant ID.
// A merchant with an ASCII name has it in ID 59 and no template.
func TestOrderChineseMerchantName(t *testing.T) {
	_, book := testBook(t)
	d := &orderDesk{book: book, now: time.Now, secret: []byte("0123456789abcdef0123"), log: zerolog.Nop(),
		cfg: config.QR{Orders: config.QROrders{TTL: config.Duration(time.Minute), Country: "CN"}, Connectors: []config.QRConnector{
			{ID: "wechat", Network: "wechat", URL: "http://127.0.0.1:1", GUID: config.DefaultGUID("wechat")},
		}}}
	long := strings.Repeat("鲜果", 10) + "𠀀𠀁𠀂𠀃𠀄𠀅𠀆" // 27 characters, the last seven four bytes each
	for i, c := range []struct{ name, want59, want64 string }{
		{"星巴克（南京西路店）", "000000000000001", "星巴克（南京西路店）"},
		{long, "000000000000001", strings.Repeat("鲜果", 10) + "𠀀𠀁𠀂𠀃𠀄"},
		{"Tea House", "Tea House", ""},
	} {
		id := fmt.Sprintf("1000000000%02d", 31+i)
		st, err := d.NewOrder(t.Context(), pipeline.OrderRequest{ID: id, TID: "T0000001", MID: "000000000000001", Currency: "156",
			Amount: 900, MerchantName: c.name, MCC: "5814", City: "CN-SH"})
		if err != nil {
			t.Fatalf("order of merchant %q: %v", c.name, err)
		}
		p, err := qr.Decode(st.Payload)
		if err != nil {
			t.Fatalf("order of merchant %q: payload %q: %v", c.name, st.Payload, err)
		}
		if got := p.Get("59"); got != c.want59 || strings.IndexFunc(got, func(r rune) bool { return r < 0x20 || r > 0x7e }) >= 0 {
			t.Errorf("merchant %q: ID 59 %q, want %q (printable ASCII)", c.name, got, c.want59)
		}
		if got := p.Sub("64", "01"); got != c.want64 {
			t.Errorf("merchant %q: ID 64 01 %q, want %q", c.name, got, c.want64)
		}
		wantLang := ""
		if c.want64 != "" {
			wantLang = "ZH"
		}
		if got := p.Sub("64", "00"); got != wantLang {
			t.Errorf("merchant %q: ID 64 00 %q, want %q", c.name, got, wantLang)
		}
		if got := p.Get("60"); got != "CN-SH" {
			t.Errorf("merchant %q: ID 60 %q, want CN-SH", c.name, got)
		}
		if got := p.Objects[len(p.Objects)-2].ID; c.want64 != "" && got != "64" {
			t.Errorf("merchant %q: object before the CRC is ID %s, want 64", c.name, got)
		}
	}
}

// TestOrderMerchantNameLatinAndLanguage: ID 59 carries the merchant's ASCII name
// (the registry's name_latin) when it has one, else the merchant ID for a name that
// is not ASCII; ID 64 carries the registered name under the merchant's
// name_language (upper case) or, without one, the language its script implies
// (Han ZH, kana JA, Hangul KO). A name whose script implies no language (Cyrillic)
// and that has none given gets no template; with one (ru) it does.
func TestOrderMerchantNameLatinAndLanguage(t *testing.T) {
	_, book := testBook(t)
	d := &orderDesk{book: book, now: time.Now, secret: []byte("0123456789abcdef0123"), log: zerolog.Nop(),
		cfg: config.QR{Orders: config.QROrders{TTL: config.Duration(time.Minute), Country: "CN"}, Connectors: []config.QRConnector{
			{ID: "wechat", Network: "wechat", URL: "http://127.0.0.1:1", GUID: config.DefaultGUID("wechat")},
		}}}
	const mid = "000000000000001"
	for i, c := range []struct {
		name, latin, lang      string
		want59, want64, wantLg string
	}{
		{"星巴克（南京西路店）", "Starbucks Nanjing W Rd", "", "Starbucks Nanjing W Rd", "星巴克（南京西路店）", "ZH"},
		{"星巴克（南京西路店）", "", "zh", mid, "星巴克（南京西路店）", "ZH"},
		{"すし処 銀座", "Sushi Ginza", "", "Sushi Ginza", "すし処 銀座", "JA"},
		{"寿司 銀座", "", "ja", mid, "寿司 銀座", "JA"}, // Han alone, said Japanese
		{"서울 카페", "", "", mid, "서울 카페", "KO"},
		{"Кафе Москва", "Cafe Moskva", "", "Cafe Moskva", "", ""},
		{"Кафе Москва", "", "ru", mid, "Кафе Москва", "RU"},
		{"Café Crème", "Cafe Creme", "fr", "Cafe Creme", "Café Crème", "FR"},
		{"Shanghai Pudong Airport Duty Free Shop", "Pudong Duty Free", "", "Pudong Duty Free", "", ""},
		{"Tea House", "", "", "Tea House", "", ""},
	} {
		id := fmt.Sprintf("1000000000%02d", 51+i)
		st, err := d.NewOrder(t.Context(), pipeline.OrderRequest{ID: id, TID: "T0000001", MID: mid, Currency: "156", Amount: 900,
			MerchantName: c.name, MerchantNameLatin: c.latin, MerchantNameLanguage: c.lang, MCC: "5814", City: "CN-SH"})
		if err != nil {
			t.Fatalf("order of merchant %q: %v", c.name, err)
		}
		p, err := qr.Decode(st.Payload)
		if err != nil {
			t.Fatalf("order of merchant %q: payload %q: %v", c.name, st.Payload, err)
		}
		if got := p.Get("59"); got != c.want59 {
			t.Errorf("merchant %q (%q, %q): ID 59 %q, want %q", c.name, c.latin, c.lang, got, c.want59)
		}
		if got := p.Sub("64", "01"); got != c.want64 {
			t.Errorf("merchant %q (%q, %q): ID 64 01 %q, want %q", c.name, c.latin, c.lang, got, c.want64)
		}
		if got := p.Sub("64", "00"); got != c.wantLg {
			t.Errorf("merchant %q (%q, %q): ID 64 00 %q, want %q", c.name, c.latin, c.lang, got, c.wantLg)
		}
		if has := p.Get("64") != ""; has != (c.want64 != "") {
			t.Errorf("merchant %q (%q, %q): ID 64 present %v", c.name, c.latin, c.lang, has)
		}
	}
}

// TestNotificationNetworkSecret: a network with a secret of its own
// (qr.connectors[].notify_secret_env) has its notifications taken only under it: one
// naming it signed with the shared secret (qr.notify_secret_env), which every other
// network holds, is refused 401 and the order left open; signed with its own, the
// order is paid. A network without one still signs with the shared secret, and not
// with another network's. Before, the one shared secret signed every network's
// notifications, so any network could notify a payment in another's name, journaled
// with that network's connector as the issuer its refunds go to.
func TestNotificationNetworkSecret(t *testing.T) {
	_, book := testBook(t)
	now := time.Now()
	for _, id := range []string{"100000000031", "100000000032"} {
		if err := book.Create(t.Context(), qrorder.Order{ID: id, TID: "T0000001", MID: "000000000000001", Currency: "156",
			Amount: 900, Created: now, Expires: now.Add(time.Minute)}); err != nil {
			t.Fatal(err)
		}
	}
	shared, wx := []byte("shared-secret-0123456789"), []byte("wechat-own-secret-0123456789")
	notified := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "switchyard_qr_notifications_total"}, []string{"network", "outcome"})
	j := &failingJournal{}
	d := &orderDesk{book: book, now: time.Now, secret: shared, secrets: map[string][]byte{"wechat": wx}, log: zerolog.Nop(), pipe: j,
		notified: notified, cfg: config.QR{Connectors: []config.QRConnector{{ID: "wechat", Network: "wechat"}, {ID: "alipay", Network: "alipay"}}}}
	send := func(n wallet.Notification, secret []byte) int {
		body, _ := json.Marshal(n)
		r := httptest.NewRequest(http.MethodPost, NotifyPath, bytes.NewReader(body))
		r.Header.Set(wallet.NotifySignatureHeader, wallet.Sign(secret, body))
		w := httptest.NewRecorder()
		d.notify(w, r)
		return w.Code
	}
	wechat := wallet.Notification{Network: "wechat", OrderID: "100000000031", TransactionID: "4200000031", TotalFee: 900}
	if code := send(wechat, shared); code != http.StatusUnauthorized {
		t.Fatalf("WeChat Pay's notification signed with the shared secret: HTTP %d, want 401", code)
	}
	if o, err := book.Get("100000000031"); err != nil || o.State != qrorder.Open || len(j.got) != 0 {
		t.Fatalf("order %+v %v, journaled %+v: want open, nothing journaled", o, err, j.got)
	}
	if code := send(wechat, wx); code != http.StatusOK {
		t.Fatalf("WeChat Pay's notification signed with its own secret: HTTP %d, want 200", code)
	}
	alipay := wallet.Notification{Network: "alipay", OrderID: "100000000032", TransactionID: "2026000032", TotalFee: 900}
	if code := send(alipay, wx); code != http.StatusUnauthorized {
		t.Fatalf("Alipay's notification signed with WeChat Pay's secret: HTTP %d, want 401", code)
	}
	if code := send(alipay, shared); code != http.StatusOK {
		t.Fatalf("Alipay's notification signed with the shared secret: HTTP %d, want 200", code)
	}
	if n := testutil.ToFloat64(notified.WithLabelValues("", noteBadSig)); n != 2 {
		t.Errorf("bad signatures counted %v, want 2", n)
	}
	for _, id := range []string{"100000000031", "100000000032"} {
		if o, err := book.Get(id); err != nil || o.State != qrorder.Paid {
			t.Errorf("order %s: %+v %v, want paid", id, o, err)
		}
	}
}

// TestOrderDeskForeignInquiry: an inquiry of an order by another terminal, or by
// the order's terminal ID under another merchant, is answered as an unknown order
// (ok false, no error) at once, though inquiries wait up to a minute for the
// payment, also once the order has expired; the owner gets the order.
func TestOrderDeskForeignInquiry(t *testing.T) {
	db, err := badger.Open(badger.DefaultOptions(t.TempDir()).WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	now := time.Now()
	clock := func() time.Time { return now }
	book, err := qrorder.NewBook(db, qrorder.Options{Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	d := &orderDesk{book: book, now: clock, log: zerolog.Nop(), cfg: config.QR{Orders: config.QROrders{Wait: config.Duration(time.Minute)}}}
	const id = "100000000007"
	if err := book.Create(t.Context(), qrorder.Order{ID: id, TID: "T0000001", MID: "000000000000001", Currency: "156", Amount: 100,
		Created: now, Expires: now.Add(time.Minute), Payload: "p"}); err != nil {
		t.Fatal(err)
	}
	for _, who := range [][2]string{{"T0000002", "000000000000002"}, {"T0000002", "000000000000001"}, {"T0000001", "000000000000002"}} {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		_, ok, err := d.Order(ctx, id, who[0], who[1])
		held := ctx.Err() != nil
		cancel()
		if ok || err != nil || held {
			t.Errorf("inquiry by %s of %s: ok %v, err %v, held %v; want not found at once", who[0], who[1], ok, err, held)
		}
	}
	now = now.Add(2 * time.Minute)
	if _, ok, err := d.Order(t.Context(), id, "T0000002", "000000000000002"); ok || err != nil {
		t.Fatalf("foreign inquiry of the expired order: ok %v, err %v", ok, err)
	}
	st, ok, err := d.Order(t.Context(), id, "T0000001", "000000000000001")
	if !ok || err != nil || st.State != qrorder.Expired || st.Amount != 100 {
		t.Fatalf("the owner's inquiry: %+v %v %v", st, ok, err)
	}
}

// TestNotificationRepeatByNetwork: WeChat Pay and Alipay give one transaction ID to
// two payments of two orders: both are paid and journaled, and each network's repeat
// is a repeat. Alipay's payment under that ID on WeChat Pay's order is another
// payment (ORDERPAID, the network's to give back), not a repeat: it was answered
// SUCCESS and counted a repeat, the payer's money in no journal. A repeat of a
// payment an earlier version took (its order as that version stored it, in the same
// Badger) is still a repeat after the upgrade: answered SUCCESS, the order as it was.
func TestNotificationRepeatByNetwork(t *testing.T) {
	db, book := testBook(t)
	now := time.Now()
	for _, id := range []string{"100000000051", "100000000052"} {
		if err := book.Create(t.Context(), qrorder.Order{ID: id, TID: "T0000001", MID: "000000000000001", Currency: "156",
			Amount: 900, Created: now, Expires: now.Add(time.Minute)}); err != nil {
			t.Fatal(err)
		}
	}
	// Paid by WeChat Pay's 4200000053 before the upgrade, as that version stored it.
	at := now.Add(-time.Hour).UTC().Format(time.RFC3339Nano)
	old := fmt.Sprintf(`{"id":"100000000053","tid":"T0000001","mid":"000000000000001","currency":"156","amount":900,"created":%q,"expires":%q,"state":"paid","payload":"000201","network":"wechat","connector":"wechat","transaction_id":"4200000053","paid_amount":900,"paid_at":%q,"decided":7}`, at, at, at)
	if err := db.Update(func(txn *badger.Txn) error { return txn.Set([]byte("qrorder/100000000053"), []byte(old)) }); err != nil {
		t.Fatal(err)
	}
	secret := []byte("0123456789abcdef0123")
	notified := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "switchyard_qr_notifications_total"}, []string{"network", "outcome"})
	j := &failingJournal{}
	d := &orderDesk{book: book, now: time.Now, secret: secret, log: zerolog.Nop(), pipe: j, notified: notified,
		cfg: config.QR{Connectors: []config.QRConnector{{ID: "wechat", Network: "wechat"}, {ID: "alipay", Network: "alipay"}}}}
	send := func(n wallet.Notification) (int, wallet.Result) {
		body, _ := json.Marshal(n)
		r := httptest.NewRequest(http.MethodPost, NotifyPath, bytes.NewReader(body))
		r.Header.Set(wallet.NotifySignatureHeader, wallet.Sign(secret, body))
		w := httptest.NewRecorder()
		d.notify(w, r)
		var res wallet.Result
		_ = json.Unmarshal(w.Body.Bytes(), &res)
		return w.Code, res
	}
	wx := wallet.Notification{Network: "wechat", OrderID: "100000000051", TransactionID: "4200000051", TotalFee: 900}
	ali := wallet.Notification{Network: "alipay", OrderID: "100000000052", TransactionID: "4200000051", TotalFee: 900}
	for _, n := range []wallet.Notification{wx, ali, wx, ali} {
		if code, res := send(n); code != http.StatusOK || res.Result != wallet.Success {
			t.Fatalf("%s's notification of order %s: HTTP %d %+v, want 200 SUCCESS", n.Network, n.OrderID, code, res)
		}
	}
	alipayOnWechats := ali
	alipayOnWechats.OrderID = wx.OrderID
	if code, res := send(alipayOnWechats); code != http.StatusOK || res.ErrCode != "ORDERPAID" {
		t.Fatalf("Alipay's payment under WeChat Pay's ID, on WeChat Pay's order: HTTP %d %+v, want ORDERPAID", code, res)
	}
	if code, res := send(wallet.Notification{Network: "wechat", OrderID: "100000000053", TransactionID: "4200000053", TotalFee: 900}); code != http.StatusOK || res.Result != wallet.Success {
		t.Fatalf("the repeat of a payment taken before the upgrade: HTTP %d %+v, want 200 SUCCESS", code, res)
	}
	for _, c := range []struct {
		network, outcome string
		n                float64
	}{{"wechat", notePaid, 1}, {"alipay", notePaid, 1}, {"wechat", noteRepeat, 2}, {"alipay", noteRepeat, 1}, {"alipay", noteOtherTxn, 1}} {
		if n := testutil.ToFloat64(notified.WithLabelValues(c.network, c.outcome)); n != c.n {
			t.Errorf("switchyard_qr_notifications_total{network=%q,outcome=%q} = %v, want %v", c.network, c.outcome, n, c.n)
		}
	}
	for id, network := range map[string]string{"100000000051": "wechat", "100000000052": "alipay", "100000000053": "wechat"} {
		if o, err := book.Get(id); err != nil || o.State != qrorder.Paid || o.Network != network {
			t.Errorf("order %s: %+v %v, want paid by %s", id, o, err, network)
		}
	}
	// Journaled: each order's payment, as the book took it (a repeat asks again, the
	// pipeline writes it once); never Alipay's payment on WeChat Pay's order.
	for _, op := range j.got {
		if op.RRN == wx.OrderID && op.Network != "wechat" {
			t.Errorf("order %s journaled as %s's payment", op.RRN, op.Network)
		}
	}
	if len(j.got) != 5 {
		t.Errorf("journal asked %d times, want 5 (two payments, two repeats, the pre-upgrade repeat)", len(j.got))
	}
}

// TestNotificationNotifyTime: a notification saying when the network sent it
// (notify_time, signed with the body) is taken within qr.notify_max_age of the
// switch's clock, either way; one sent longer ago (a captured notification replayed)
// or further ahead is refused 401 NOTIFY_EXPIRED, counted stale, the order left open;
// an unreadable time is refused 400. One without notify_time is taken, as before
// (networks that do not send it). Before, a notification was taken whenever it came.
func TestNotificationNotifyTime(t *testing.T) {
	_, book := testBook(t)
	now := time.Now().UTC().Truncate(time.Second) // the book judges expiry by the wall clock
	ids := []string{"100000000061", "100000000062", "100000000063"}
	for _, id := range ids {
		if err := book.Create(t.Context(), qrorder.Order{ID: id, TID: "T0000001", MID: "000000000000001", Currency: "156",
			Amount: 900, Created: now, Expires: now.Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}
	secret := []byte("0123456789abcdef0123")
	notified := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "switchyard_qr_notifications_total"}, []string{"network", "outcome"})
	j := &failingJournal{}
	d := &orderDesk{book: book, now: func() time.Time { return now }, secret: secret, log: zerolog.Nop(), pipe: j, notified: notified,
		cfg: config.QR{NotifyMaxAge: config.Duration(5 * time.Minute), Connectors: []config.QRConnector{{ID: "wechat", Network: "wechat"}}}}
	send := func(id, sent string) (int, wallet.Result) {
		body, _ := json.Marshal(wallet.Notification{Network: "wechat", OrderID: id, TransactionID: "TX" + id, TotalFee: 900, NotifyTime: sent})
		r := httptest.NewRequest(http.MethodPost, NotifyPath, bytes.NewReader(body))
		r.Header.Set(wallet.NotifySignatureHeader, wallet.Sign(secret, body))
		w := httptest.NewRecorder()
		d.notify(w, r)
		var res wallet.Result
		_ = json.Unmarshal(w.Body.Bytes(), &res)
		return w.Code, res
	}
	at := func(d time.Duration) string { return now.Add(d).Format(time.RFC3339Nano) }
	for _, c := range []struct {
		what, sent string
		code       int
		errCode    string
	}{
		{"sent 6 minutes ago (a replay)", at(-6 * time.Minute), http.StatusUnauthorized, "NOTIFY_EXPIRED"},
		{"sent 6 minutes ahead", at(6 * time.Minute), http.StatusUnauthorized, "NOTIFY_EXPIRED"},
		{"an unreadable time", "yesterday", http.StatusBadRequest, "PARAM_ERROR"},
	} {
		if code, res := send(ids[0], c.sent); code != c.code || res.ErrCode != c.errCode {
			t.Errorf("%s: HTTP %d %+v, want %d %s", c.what, code, res, c.code, c.errCode)
		}
	}
	if o, err := book.Get(ids[0]); err != nil || o.State != qrorder.Open || len(j.got) != 0 {
		t.Fatalf("after the refused notifications: %+v %v, journaled %d; want open, nothing journaled", o, err, len(j.got))
	}
	if n := testutil.ToFloat64(notified.WithLabelValues("wechat", noteStale)); n != 2 {
		t.Errorf("stale notifications counted %v, want 2", n)
	}
	for i, sent := range []string{at(-4 * time.Minute), "", at(90 * time.Second)} {
		if code, res := send(ids[i], sent); code != http.StatusOK || res.Result != wallet.Success {
			t.Errorf("notification of order %s with notify_time %q: HTTP %d %+v, want 200 SUCCESS", ids[i], sent, code, res)
		}
		if o, err := book.Get(ids[i]); err != nil || o.State != qrorder.Paid {
			t.Errorf("order %s: %+v %v, want paid", ids[i], o, err)
		}
	}
}

// TestNotificationRequireNotifyTime: a network whose connector sets
// require_notify_time has its notifications without notify_time refused 401
// NOTIFY_TIME_REQUIRED, counted undated, the order left open and nothing journaled
// (a captured notification without a time cannot be replayed for ever); with a time
// within qr.notify_max_age it is taken. Another network's notification without
// notify_time is taken, as before.
func TestNotificationRequireNotifyTime(t *testing.T) {
	_, book := testBook(t)
	now := time.Now().UTC().Truncate(time.Second) // the book judges expiry by the wall clock
	ids := []string{"100000000071", "100000000072"}
	for _, id := range ids {
		if err := book.Create(t.Context(), qrorder.Order{ID: id, TID: "T0000001", MID: "000000000000001", Currency: "156",
			Amount: 900, Created: now, Expires: now.Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}
	secret := []byte("0123456789abcdef0123")
	notified := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "switchyard_qr_notifications_total"}, []string{"network", "outcome"})
	j := &failingJournal{}
	d := &orderDesk{book: book, now: func() time.Time { return now }, secret: secret, log: zerolog.Nop(), pipe: j, notified: notified,
		cfg: config.QR{NotifyMaxAge: config.Duration(5 * time.Minute), Connectors: []config.QRConnector{
			{ID: "wechat", Network: "wechat", URL: "http://127.0.0.1:1", RequireNotifyTime: true},
			{ID: "alipay", Network: "alipay", URL: "http://127.0.0.1:2"}}}}
	send := func(network, id, sent string) (int, wallet.Result) {
		body, _ := json.Marshal(wallet.Notification{Network: network, OrderID: id, TransactionID: "TX" + id, TotalFee: 900, NotifyTime: sent})
		r := httptest.NewRequest(http.MethodPost, NotifyPath, bytes.NewReader(body))
		r.Header.Set(wallet.NotifySignatureHeader, wallet.Sign(secret, body))
		w := httptest.NewRecorder()
		d.notify(w, r)
		var res wallet.Result
		_ = json.Unmarshal(w.Body.Bytes(), &res)
		return w.Code, res
	}
	for range 2 { // a replay, again
		if code, res := send("wechat", ids[0], ""); code != http.StatusUnauthorized || res.ErrCode != "NOTIFY_TIME_REQUIRED" {
			t.Errorf("wechat notification without notify_time: HTTP %d %+v, want 401 NOTIFY_TIME_REQUIRED", code, res)
		}
	}
	if o, err := book.Get(ids[0]); err != nil || o.State != qrorder.Open || len(j.got) != 0 {
		t.Fatalf("after the refused notifications: %+v %v, journaled %d; want open, nothing journaled", o, err, len(j.got))
	}
	if n := testutil.ToFloat64(notified.WithLabelValues("wechat", noteUndated)); n != 2 {
		t.Errorf("undated notifications counted %v, want 2", n)
	}
	if code, res := send("wechat", ids[0], now.Add(-time.Minute).Format(time.RFC3339Nano)); code != http.StatusOK || res.Result != wallet.Success {
		t.Errorf("wechat notification with a fresh notify_time: HTTP %d %+v, want 200 SUCCESS", code, res)
	}
	if code, res := send("alipay", ids[1], ""); code != http.StatusOK || res.Result != wallet.Success {
		t.Errorf("alipay notification without notify_time (not required): HTTP %d %+v, want 200 SUCCESS", code, res)
	}
	for _, id := range ids {
		if o, err := book.Get(id); err != nil || o.State != qrorder.Paid {
			t.Errorf("order %s: %+v %v, want paid", id, o, err)
		}
	}
}
