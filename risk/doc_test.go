package risk

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/rs/zerolog"
)

// TestFirstRuleDoc follows "A first rule" of docs/rules.md: its rule file loads with
// the log lines the page quotes, and its typo is refused with the lines it quotes.
func TestFirstRuleDoc(t *testing.T) {
	doc, err := os.ReadFile("../docs/rules.md")
	if err != nil {
		t.Fatal(err)
	}
	sec := string(doc)
	i := strings.Index(sec, "\n## A first rule\n")
	if i < 0 {
		t.Fatal(`docs/rules.md has no "## A first rule" section`)
	}
	sec = sec[i+1:]
	if j := strings.Index(sec[3:], "\n## "); j >= 0 {
		sec = sec[:j+3]
	}
	file := regexp.MustCompile("Put this in a new file, say `([^`]+)`").FindStringSubmatch(sec)
	block := regexp.MustCompile("(?s)```yaml\n(.*?)```").FindStringSubmatch(sec)
	typo := regexp.MustCompile("the condition `(\"[^`]*\")` with nothing after it").FindStringSubmatch(sec)
	if file == nil || block == nil || typo == nil {
		t.Fatalf("the section no longer names the file (%v), the rule (%v) or the typo (%v)", file != nil, block != nil, typo != nil)
	}
	var quoted []string // the indented lines outside the fenced blocks: what the refusal logs
	fenced := false
	sc := bufio.NewScanner(strings.NewReader(sec))
	for sc.Scan() {
		l := sc.Text()
		if strings.HasPrefix(l, "```") {
			fenced = !fenced
		} else if !fenced && strings.HasPrefix(l, "    ") {
			quoted = append(quoted, strings.TrimSpace(l))
		}
	}
	if len(quoted) == 0 {
		t.Fatal("the section quotes no log lines")
	}

	t.Chdir(t.TempDir()) // the page's paths are relative to where the switch runs
	if err := os.Mkdir("rules", 0o700); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	log := zerolog.New(&logs)
	e, err := New("./rules", Options{Logger: log}) // the running switch, before the new file
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if err := os.WriteFile(filepath.FromSlash(file[1]), []byte(block[1]), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Reload(); err != nil {
		t.Fatalf("the page's rule: %v", err)
	}
	msgs := messages(t, &logs)
	for _, want := range regexp.MustCompile("logs `([^`]+)`|warning `([^`]+)`").FindAllStringSubmatch(sec, -1) {
		w := want[1] + want[2]
		if !strings.Contains(msgs, w) {
			t.Errorf("the page says the switch logs %q; it logged:\n%s", w, msgs)
		}
	}

	bad := regexp.MustCompile(`condition: "[^"]*"`).ReplaceAllLiteralString(block[1], "condition: "+typo[1])
	if err := os.WriteFile(filepath.FromSlash(file[1]), []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Reload(); err == nil {
		t.Fatal("the page's typo was accepted")
	}
	msgs = messages(t, &logs)
	if want := strings.Join(quoted, "\n"); !strings.Contains(msgs, want) {
		t.Errorf("the page quotes:\n%s\nthe switch logged:\n%s", want, msgs)
	}
}

// messages returns the messages of the JSON log lines in b, one after another, and empties b.
func messages(t *testing.T, b *bytes.Buffer) string {
	t.Helper()
	var out strings.Builder
	sc := bufio.NewScanner(b)
	for sc.Scan() {
		var l struct{ Message string }
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("log line %q: %v", sc.Text(), err)
		}
		out.WriteString(l.Message + "\n")
	}
	b.Reset()
	return out.String()
}
