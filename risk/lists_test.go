package risk

import "testing"

func TestListsInRules(t *testing.T) {
	l, _ := NewLists(nil)
	e, err := New("../rules", Options{Lists: l})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	in := purchase(1200)
	if d := e.Evaluate(in); d.Action != ActionAllow {
		t.Fatalf("before listing: %s", d.Summary())
	}
	if _, err := l.Add("alice", ListEntry{List: ListDeny, Kind: KindCard, Value: in.Txn.CardHash}); err != nil {
		t.Fatal(err)
	}
	if d := e.Evaluate(in); d.Rule != "deny-card" || d.ResponseCode != "05" {
		t.Errorf("after listing the card: %s", d.Summary())
	}
	// in_list reads the same lists.
	rs, err := Load(writeRules(t, map[string]string{"a.yaml": `rules:
  - {id: watched, condition: 'in_list("watch", "merchant", merchant.id)', action: review}
`}), LoadOptions{Lists: l})
	if err != nil {
		t.Fatal(err)
	}
	if d := rs.Evaluate(in, nil, l); d.Action != ActionAllow {
		t.Errorf("before watching: %s", d.Summary())
	}
	if _, err := l.Add("alice", ListEntry{List: "watch", Kind: KindMerchant, Value: in.Merchant.ID}); err != nil {
		t.Fatal(err)
	}
	if d := rs.Evaluate(in, nil, l); d.Rule != "watched" {
		t.Errorf("after watching: %s", d.Summary())
	}
}

func writeFile(dir, name, content string) error {
	return writeFileBytes(dir, name, []byte(content))
}
