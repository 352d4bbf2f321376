package registry

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/dgraph-io/badger/v4"

	"github.com/switchyard/switchyard/internal/statelog"
)

// TestMerchantNameLatinValidated: a merchant's ASCII name (name_latin, a QR code's
// ID 59) is 1 to 25 printable ASCII characters or none, and its name language an
// ISO 639-1 code or none; anything else is refused with an error naming the field.
func TestMerchantNameLatinValidated(t *testing.T) {
	base := Merchant{ID: "000000000000401", Name: "星巴克（南京西路店）", MCC: "5814", Region: "CN-SH", Tier: TierMicro,
		Rating: RatingLow, Status: MerchantActive}
	for _, c := range []struct {
		latin, lang string
		why         string // "" for accepted
	}{
		{"", "", ""},
		{"Starbucks Nanjing W Rd", "zh", ""},
		{strings.Repeat("A", 25), "ZH", ""},
		{"7-Eleven #123 (B1)", "ja", ""},
		{strings.Repeat("A", 26), "", "name_latin"},
		{"Café", "", "name_latin"},
		{"星巴克", "", "name_latin"},
		{"Tea\tHouse", "", "name_latin"},
		{"Tea\u202eHouse", "", "name_latin"},
		{"   ", "", "name_latin"},
		{"", "cn", `name_language) "cn"`},
		{"", "jp", `name_language) "jp"`},
		{"", "zho", `name_language) "zho"`},
		{"", "z", `name_language) "z"`},
	} {
		m := base
		m.NameLatin, m.NameLanguage = c.latin, c.lang
		err := m.Validate()
		if c.why == "" {
			if err != nil {
				t.Errorf("name_latin %q, language %q: %v, want accepted", c.latin, c.lang, err)
			}
			continue
		}
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), c.why) {
			t.Errorf("name_latin %q, language %q: %v, want ErrInvalid naming %s", c.latin, c.lang, err, c.why)
		}
	}
}

// TestMerchantNameLatinReviewedAndStored: the ASCII name and the name language are
// set at registration and by a change, both through two-person review, kept across
// a restart, taken away by a change to ""; a card number typed into the ASCII name
// is masked as in the name. A merchant stored by a version without these fields
// (its JSON has no name_latin) reads back with none, and a change gives it one.
func TestMerchantNameLatinReviewedAndStored(t *testing.T) {
	f := newFixture(t)
	const mid = "000000000000402"
	m := Merchant{ID: mid, Name: "东京拉面", NameLatin: "Tokyo Ramen", NameLanguage: "zh", MCC: "5814", Region: "CN-SH",
		Tier: TierMicro, Rating: RatingLow}
	req, err := f.reg.RequestChange(alice, Change{Op: OpMerchantRegister, Merchant: &m})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.reg.Approve(alice, req.ID, ""); err == nil {
		t.Fatal("the requester approved her own registration")
	}
	if _, ok := f.reg.Merchant(mid); ok {
		t.Fatal("merchant registered before review")
	}
	if _, err := f.reg.Approve(bob, req.ID, "ok"); err != nil {
		t.Fatal(err)
	}
	f.reopen(t)
	if got, _ := f.reg.Merchant(mid); got == nil || got.NameLatin != "Tokyo Ramen" || got.NameLanguage != "zh" || got.Name != "东京拉面" {
		t.Fatalf("registered merchant after restart: %+v", got)
	}
	f.apply(t, Change{Op: OpMerchantChange, Target: mid, MerchantPatch: &MerchantPatch{NameLatin: strp("Ramen 4111111111111111")}})
	if got, _ := f.reg.Merchant(mid); got.NameLatin != "Ramen 411111******1111" || got.NameLanguage != "zh" {
		t.Fatalf("changed merchant: %+v, want the card number masked and the language kept", got)
	}
	f.apply(t, Change{Op: OpMerchantChange, Target: mid, MerchantPatch: &MerchantPatch{NameLatin: strp(""), NameLanguage: strp("")}})
	if got, _ := f.reg.Merchant(mid); got.NameLatin != "" || got.NameLanguage != "" || got.Name != "东京拉面" {
		t.Fatalf("merchant whose ASCII name and language were taken away: %+v", got)
	}
	if _, err := f.reg.RequestChange(alice, Change{Op: OpMerchantChange, Target: mid,
		MerchantPatch: &MerchantPatch{NameLatin: strp("东京")}}); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "name_latin") {
		t.Fatalf("a change to a Chinese ASCII name: %v, want refused", err)
	}

	// What a version before name_latin stored: no such keys in the JSON.
	cur, _ := f.reg.Merchant("000000000000001")
	raw, err := json.Marshal(cur)
	if err != nil {
		t.Fatal(err)
	}
	var old map[string]any
	if err := json.Unmarshal(raw, &old); err != nil {
		t.Fatal(err)
	}
	delete(old, "name_latin")
	delete(old, "name_language")
	old["id"], old["name"] = "000000000000403", "老字号"
	f.close(t)
	db := openDB(t, f.dir)
	if err := db.Update(func(txn *badger.Txn) error { return putJSON(txn, []byte(pfxMerchant+"000000000000403"), old) }); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	f.open(t)
	got, ok := f.reg.Merchant("000000000000403")
	if !ok || got.Name != "老字号" || got.NameLatin != "" || got.NameLanguage != "" {
		t.Fatalf("merchant stored by an older version: %+v", got)
	}
	f.apply(t, Change{Op: OpMerchantChange, Target: "000000000000403", MerchantPatch: &MerchantPatch{NameLatin: strp("Lao Zi Hao")}})
	if got, _ := f.reg.Merchant("000000000000403"); got.NameLatin != "Lao Zi Hao" || got.Name != "老字号" {
		t.Fatalf("older merchant given an ASCII name: %+v", got)
	}
}

// TestMerchantNameLatinReplicated: in a cluster the ASCII name and language reach
// the other node through the state log (the merchant's JSON in the commit).
func TestMerchantNameLatinReplicated(t *testing.T) {
	mem := &statelog.Memory{}
	a, b := newNode(t, mem, mem), newNode(t, mem, mem)
	deliver(t, mem)
	m := Merchant{ID: "000000000000404", Name: "ソウル食堂", NameLatin: "Seoul Shokudo", NameLanguage: "ja", MCC: "5814",
		Region: "CN-SH", Tier: TierMicro, Rating: RatingLow}
	req, err := a.reg.RequestChange(alice, Change{Op: OpMerchantRegister, Merchant: &m})
	if err != nil {
		t.Fatal(err)
	}
	deliver(t, mem)
	if _, err := b.reg.Approve(bob, req.ID, "ok"); err != nil {
		t.Fatal(err)
	}
	deliver(t, mem)
	for name, n := range map[string]*node{"A": a, "B": b} {
		if got, _ := n.reg.Merchant(m.ID); got == nil || got.NameLatin != "Seoul Shokudo" || got.NameLanguage != "ja" {
			t.Errorf("node %s: merchant %+v", name, got)
		}
	}
	// A change requested on B and approved on A reaches both, in lower case.
	req, err = b.reg.RequestChange(alice, Change{Op: OpMerchantChange, Target: m.ID,
		MerchantPatch: &MerchantPatch{NameLatin: strp("Seoul Diner"), NameLanguage: strp("KO")}})
	if err != nil {
		t.Fatal(err)
	}
	deliver(t, mem)
	if _, err := a.reg.Approve(bob, req.ID, "ok"); err != nil {
		t.Fatal(err)
	}
	deliver(t, mem)
	for name, n := range map[string]*node{"A": a, "B": b} {
		if got, _ := n.reg.Merchant(m.ID); got == nil || got.NameLatin != "Seoul Diner" || got.NameLanguage != "ko" {
			t.Errorf("node %s after the change: merchant %+v", name, got)
		}
	}
}

// TestMerchantNameLatinCSVFormula: an ASCII name a spreadsheet would run as a
// formula is exported with a ' before it (internal/csvcell) and imports back as
// it was.
func TestMerchantNameLatinCSVFormula(t *testing.T) {
	m := &Merchant{ID: "000000000000416", Name: "星巴克", NameLatin: "=HYPERLINK(\"x\")", NameLanguage: "zh", MCC: "5814",
		Region: "CN-SH", Tier: TierMicro, Rating: RatingLow}
	var out bytes.Buffer
	if err := WriteMerchantsCSV(&out, []*Merchant{m}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), `"'=HYPERLINK(""x"")",zh`) {
		t.Fatalf("export of a formula-like ASCII name:\n%s", out.String())
	}
	f := newFixture(t)
	rep, err := f.reg.ImportMerchants(alice, &out, "", false)
	if err != nil || rep.Accepted != 1 {
		t.Fatalf("import back: %+v, %v", rep, err)
	}
	if _, err := f.reg.Approve(bob, rep.Change.ID, "ok"); err != nil {
		t.Fatal(err)
	}
	if got, _ := f.reg.Merchant(m.ID); got == nil || got.NameLatin != m.NameLatin {
		t.Fatalf("imported back: %+v", got)
	}
}

// TestMerchantNameLatinCSV: the merchant CSV takes name_latin and name_language
// columns (a bad cell rejects its row, naming the field), and the export writes
// them, so that an export imports back into the same merchants.
func TestMerchantNameLatinCSV(t *testing.T) {
	f := newFixture(t)
	in := "merchant_id,name,mcc,region,tier,name_latin,name_language\n" +
		"000000000000411,上海鲜果超市,5411,CN-SH,micro,Shanghai Fresh Fruit,zh\n" +
		"000000000000412,서울 카페,5814,CN-SH,micro,,\n" +
		"000000000000413,星巴克,5814,CN-SH,micro,星巴克,\n" +
		"000000000000414,星巴克,5814,CN-SH,micro,,cn\n"
	rep, err := f.reg.ImportMerchants(alice, strings.NewReader(in), "", false)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Accepted != 2 || rep.Rejected != 2 {
		t.Fatalf("report %+v, want lines 2 and 3 accepted, 4 and 5 rejected", rep)
	}
	for _, row := range rep.Rows {
		if row.Line == 4 && !strings.Contains(row.Error, "name_latin") || row.Line == 5 && !strings.Contains(row.Error, `name_language) "cn"`) {
			t.Errorf("line %d: %q", row.Line, row.Error)
		}
	}
	if _, err := f.reg.Approve(bob, rep.Change.ID, "ok"); err != nil {
		t.Fatal(err)
	}
	got, _ := f.reg.Merchant("000000000000411")
	if got == nil || got.NameLatin != "Shanghai Fresh Fruit" || got.NameLanguage != "zh" {
		t.Fatalf("imported merchant %+v", got)
	}
	var out bytes.Buffer
	if err := WriteMerchantsCSV(&out, []*Merchant{got}); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 || !strings.HasSuffix(lines[0], ",name_latin,name_language,currency") ||
		!strings.HasSuffix(lines[1], ",Shanghai Fresh Fruit,zh,") {
		t.Fatalf("export:\n%s", out.String())
	}
	// The export imports back: the same merchant under another ID.
	back := strings.Replace(out.String(), "000000000000411", "000000000000415", 1)
	rep, err = f.reg.ImportMerchants(alice, strings.NewReader(back), "", true)
	if err != nil || rep.Accepted != 1 {
		t.Fatalf("export imported back: %+v, %v", rep, err)
	}
}

// TestMerchantNameLanguageLowerCase: a name language given in upper case (ZH, as a
// QR code writes it) is stored in lower case, as ISO 639-1 writes it, by a
// registration (its request too), a CSV import and a change.
func TestMerchantNameLanguageLowerCase(t *testing.T) {
	f := newFixture(t)
	m := Merchant{ID: "000000000000421", Name: "すし処", NameLanguage: "JA", MCC: "5814", Region: "CN-SH", Tier: TierMicro, Rating: RatingLow}
	req, err := f.reg.RequestChange(alice, Change{Op: OpMerchantRegister, Merchant: &m})
	if err != nil {
		t.Fatal(err)
	}
	if req.Merchant.NameLanguage != "ja" {
		t.Errorf("registration request: language %q, want ja", req.Merchant.NameLanguage)
	}
	if _, err := f.reg.Approve(bob, req.ID, "ok"); err != nil {
		t.Fatal(err)
	}
	rep, err := f.reg.ImportMerchants(alice, strings.NewReader("merchant_id,name,mcc,region,tier,name_language\n000000000000422,上海超市,5411,CN-SH,micro,ZH\n"), "", false)
	if err != nil || rep.Accepted != 1 {
		t.Fatalf("import: %+v, %v", rep, err)
	}
	if _, err := f.reg.Approve(bob, rep.Change.ID, "ok"); err != nil {
		t.Fatal(err)
	}
	f.apply(t, Change{Op: OpMerchantChange, Target: "000000000000421", MerchantPatch: &MerchantPatch{NameLanguage: strp("Ko")}})
	for id, want := range map[string]string{"000000000000421": "ko", "000000000000422": "zh"} {
		if got, _ := f.reg.Merchant(id); got == nil || got.NameLanguage != want {
			t.Errorf("merchant %s: %+v, want language %s", id, got, want)
		}
	}
}
