package console_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/switchyard/switchyard/switch/message"
	"github.com/switchyard/switchyard/switch/termclient"
)

// TestBrowserEveryPage opens every page of the console as the admin, in English
// and in Chinese, after some traffic (approvals, declines, a relocated
// terminal) and a backtest: each renders without an error and in the chosen
// language. With CONSOLE_SCREENSHOTS=DIR it saves each page as DIR/NAME.png
// (docs/console/ is made so: see docs/console.md).
func TestBrowserEveryPage(t *testing.T) {
	s := demoSwitch(t)
	traffic(t, s.ListenerAddr("ascii"))
	b := newBrowser(t, s)
	ad := b.user("admin")
	ad.login("admin", demoPassword("admin"))
	ad.open("/console/rules")
	ad.do("backtest", chromedp.SetValue(chromedp.CSS("#bt-dir"), "next")) // under the candidates directory (demoSwitch)
	ad.submit("#bt-start", "#msg")
	ad.waitText("#bt-report", "→", 60*time.Second) // the report's "declines before → after"

	// A pending change to review, with its diff.
	ad.open("/console/merchants/000000000000003")
	ad.do("reason", chromedp.SendKeys(chromedp.CSS("#lc-reason"), "chargebacks"))
	ad.submit("#lc-freeze", "#change-id")
	change := ad.text("#change-id")

	dir := os.Getenv("CONSOLE_SCREENSHOTS")
	pages := []struct{ name, path, want string }{
		{"dashboard", "/console/", "dash-incidents"},
		{"merchants", "/console/merchants", "merchants"},
		{"merchant", "/console/merchants/000000000000001", "merchant-name"},
		{"terminals", "/console/terminals?q=SN-", "terminals"},
		{"terminal", "/console/terminals/T0000001", "terminal-id"},
		{"changes", "/console/changes", "changes"},
		{"change", "/console/changes/" + change, "change-id"},
		{"incidents", "/console/incidents", "incidents"},
		{"transactions", "/console/transactions", "search"},
		{"rules", "/console/rules", "rules"},
		{"map", "/console/map", "map"},
		{"apps", "/console/apps", "rollouts"},
		{"keys", "/console/keys", "keys"},
		{"oplog", "/console/oplog?actor=admin", "oplog"},
		{"users", "/console/users", "users"},
	}
	for _, lang := range []string{"en", "zh"} {
		ad.open("/console/lang/" + lang + "?back=/console/")
		for _, p := range pages {
			start := time.Now()
			ad.open(p.path)
			if !ad.has("#" + p.want) {
				t.Fatalf("%s (%s): no #%s on the page", p.path, lang, p.want)
			}
			if ad.has("#error-message") {
				t.Fatalf("%s (%s): error page: %s", p.path, lang, ad.text("#error-message"))
			}
			if got := ad.text("html"); lang == "zh" && !strings.ContainsAny(got, "总览商户终端") {
				t.Fatalf("%s in Chinese shows no Chinese label", p.path)
			}
			if dir != "" && (lang == "en" || p.name == "dashboard") {
				if p.name == "dashboard" {
					ad.waitText("#dash-incidents", "T0000001", 3*time.Second)
				}
				png, err := chromedp.Run(ad.ctx, chromedp.FullScreenshot(100))
				if err != nil {
					t.Fatal(err)
				}
				name := p.name
				if lang != "en" {
					name += "-" + lang
				}
				if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			t.Logf("%s %s: %v", lang, p.path, time.Since(start))
		}
	}
	ad.open("/console/transactions")
	ad.do("open a transaction", chromedp.Click(chromedp.CSS("table.txns tbody a")), chromedp.WaitVisible(chromedp.CSS("#timeline")))
	if dir != "" {
		png, err := chromedp.Run(ad.ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatal(err)
		}
		_ = os.WriteFile(filepath.Join(dir, "transaction.png"), png, 0o644)
	}
	ad.open("/console/")
	ad.submit("#logout", "#login-form")
	if dir != "" {
		png, _ := chromedp.Run(ad.ctx, chromedp.FullScreenshot(100))
		_ = os.WriteFile(filepath.Join(dir, "login.png"), png, 0o644)
	}
}

// traffic sends purchases from the demo terminals: approvals, a few declines
// by the issuer simulator (amounts it declines) and one relocated terminal.
func traffic(t *testing.T, addr string) {
	t.Helper()
	c, err := termclient.Dial(addr, message.DialectASCII, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	id := [][2]string{{"DI", "SN-T0000001"}, {"SI", "89860000000000000001"}, {"IM", "860000000000001"}, {"GL", "39.904200,116.407400"}, {"AV", "1.0.0"}}
	send := func(tx termclient.Txn) {
		m, err := termclient.Build(tx, message.DialectASCII)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if _, err := c.Send(ctx, m, nil); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 40; i++ {
		send(termclient.Txn{PAN: "4761739001010119", Amount: int64(1000 + 37*i), Expiry: "2912", TID: "T0000001", MID: "000000000000001", TLV: id})
	}
	send(termclient.Txn{PAN: "4761739001010119", Amount: 1000, Expiry: "2912", TID: "T0000001", MID: "000000000000002", TLV: id})
	moved := append([][2]string(nil), id...)
	moved[3] = [2]string{"GL", "31.230400,121.473700"}
	send(termclient.Txn{PAN: "4761739001010119", Amount: 1000, Expiry: "2912", TID: "T0000001", MID: "000000000000001", TLV: moved})
}
