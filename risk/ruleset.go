package risk

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/parser"
	"github.com/expr-lang/expr/vm"
	"gopkg.in/yaml.v3"

	_ "time/tzdata" // the rule set's time zone must load on any machine
)

// Action is what a rule asks for when it hits.
type Action string

// The actions, weakest first. Among the enforced rules that hit, the strongest
// action decides; between rules of the same action the first in load order wins.
const (
	// ActionAllow records that the rule hit; it changes nothing.
	ActionAllow Action = "allow"
	// ActionAlert approves and raises an alert for the analysts.
	ActionAlert Action = "alert"
	// ActionReview approves and queues the transaction for manual review.
	ActionReview Action = "review"
	// ActionDecline declines with the rule's response code and reason.
	ActionDecline Action = "decline"
)

// Rank orders actions by strength: allow 1, alert 2, review 3, decline 4, else 0.
func (a Action) Rank() int {
	switch a {
	case ActionAllow:
		return 1
	case ActionAlert:
		return 2
	case ActionReview:
		return 3
	case ActionDecline:
		return 4
	}
	return 0
}

// Mode tells whether a rule acts.
type Mode string

// The modes of a rule.
const (
	// ModeEnforce rules act on their hits.
	ModeEnforce Mode = "enforce"
	// ModeShadow rules are evaluated and their hits recorded, but never act.
	ModeShadow Mode = "shadow"
)

// Rule is one compiled rule of a RuleSet.
type Rule struct {
	ID           string     `json:"id"`                      // unique in the set
	Description  string     `json:"description,omitempty"`   // for people
	Condition    string     `json:"condition"`               // the expr source
	Action       Action     `json:"action"`                  // what a hit asks for
	ResponseCode string     `json:"response_code,omitempty"` // DE 39 of a decline
	Score        int        `json:"score"`                   // fixed score of a hit (when ScoreExpr is "")
	ScoreExpr    string     `json:"score_expr,omitempty"`    // score expression, if the score is one
	Reason       string     `json:"reason"`                  // DE 48 RS of a decline
	Mode         Mode       `json:"mode"`                    // enforce or shadow
	Owner        string     `json:"owner,omitempty"`         // who to ask about the rule
	File         string     `json:"file"`                    // rule file
	Line         int        `json:"line"`                    // line of the rule in File
	Tests        []TestCase `json:"-"`                       // the rule's test cases
	// Refs are the input names the condition and score read, like "txn.amount".
	Refs []string `json:"refs"`

	prog      *vm.Program
	scoreProg *vm.Program
	fileIdx   int
}

// Counter is one declared velocity counter.
type Counter struct {
	Name        string        `json:"name"`                  // velocity.NAME
	Description string        `json:"description,omitempty"` // for people
	Dimensions  []string      `json:"dimension"`             // card, terminal, merchant, device
	Measure     string        `json:"measure"`               // count, sum or distinct_cards
	Window      time.Duration `json:"window"`                // sliding window
	Resolution  time.Duration `json:"resolution"`            // bucket width
	Where       string        `json:"where,omitempty"`       // filter expression, "" = all
	File        string        `json:"file"`                  // rule file
	Line        int           `json:"line"`                  // line of the declaration
	// Index is the counter's slot in Input.Velocity.
	Index int `json:"index"`

	spec    counterSpec
	where   *vm.Program
	whereID int // counters with the same filter share its result per transaction
	used    bool
}

// MarshalJSON writes the window and resolution as durations like "10m0s".
func (c *Counter) MarshalJSON() ([]byte, error) {
	type plain Counter
	return json.Marshal(struct {
		*plain
		Window     string `json:"window"`
		Resolution string `json:"resolution"`
	}{(*plain)(c), c.Window.String(), c.Resolution.String()})
}

// Thresholds turn the summed score of one file's hit rules into a review or
// a decline.
type Thresholds struct {
	ID           string `json:"id"`                // rule id of the threshold's hits
	Review       int    `json:"review,omitempty"`  // score that asks for review, 0 = none
	Decline      int    `json:"decline,omitempty"` // score that declines, 0 = none
	ResponseCode string `json:"response_code"`     // DE 39 of its declines
	Reason       string `json:"reason"`            // DE 48 RS of its declines
	Mode         Mode   `json:"mode"`              // enforce or shadow
	File         string `json:"file"`              // the file whose rules it sums
	Line         int    `json:"line"`              // line of the declaration
}

// RuleSet is a compiled, immutable set of rule files. It is safe for
// concurrent use.
type RuleSet struct {
	// Version is the content hash of the files (names and bytes).
	Version string `json:"version"`
	// Dir is the directory the files came from.
	Dir string `json:"dir"`
	// Files are the file names, in load order.
	Files []string `json:"files"`
	// Rules are all rules, in load order.
	Rules []*Rule `json:"rules"`
	// Counters are the declared velocity counters.
	Counters []*Counter `json:"counters"`
	// Thresholds are per file; nil entries for files that declare none.
	Thresholds []*Thresholds `json:"thresholds"`
	// Location is the time zone of txn.local_hour, local_time and weekday.
	Location *time.Location `json:"-"`
	// TimeZone names Location.
	TimeZone string `json:"timezone"`
	// Warnings are lint findings that do not stop the set from loading.
	Warnings []Problem `json:"warnings,omitempty"`
	// LoadedAt is when the set was compiled.
	LoadedAt time.Time `json:"loaded_at"`

	counterByName map[string]*Counter
	readCounters  []*Counter     // counters some rule reads
	whereIDs      map[string]int // distinct counter filters (normalized source) -> id
	usesLists     bool
	maxWindow     time.Duration
	lists         *Lists
}

// Counter returns the counter with the given name, or nil.
func (rs *RuleSet) Counter(name string) *Counter { return rs.counterByName[name] }

// Rule returns the rule with the given id, or nil.
func (rs *RuleSet) Rule(id string) *Rule {
	for _, r := range rs.Rules {
		if r.ID == id {
			return r
		}
	}
	return nil
}

// MaxWindow is the longest counter window of the set (0 without counters).
func (rs *RuleSet) MaxWindow() time.Duration { return rs.maxWindow }

// Problem is one error or warning found in a rule file.
type Problem struct {
	File    string `json:"file"`             // rule file, "" for the whole set
	Line    int    `json:"line"`             // 1-based, 0 when unknown
	Column  int    `json:"column,omitempty"` // 1-based inside an expression, 0 when unknown
	Message string `json:"message"`          // what is wrong
}

// String formats p as file:line:column: message.
func (p Problem) String() string {
	loc := p.File
	if p.Line > 0 {
		loc += ":" + strconv.Itoa(p.Line)
		if p.Column > 0 {
			loc += ":" + strconv.Itoa(p.Column)
		}
	}
	if loc == "" {
		return p.Message
	}
	return loc + ": " + p.Message
}

// LoadError is the error of Load: every problem found, each with file:line.
type LoadError struct {
	Dir      string    // the rules directory
	Problems []Problem // what stops the set from loading
	Warnings []Problem // lint findings besides
}

// Error lists every problem, one per line.
func (e *LoadError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "rules in %s: %d problem(s)", e.Dir, len(e.Problems))
	for _, p := range e.Problems {
		b.WriteString("\n")
		b.WriteString(p.String())
	}
	return b.String()
}

// LoadOptions configure Load.
type LoadOptions struct {
	// Location is the time zone when no file declares one; nil means UTC.
	Location *time.Location
	// Lists backs the in_list function and the lists.* flags; nil means empty lists.
	Lists *Lists
}

// SourceFile is one rule file's name and content.
type SourceFile struct {
	Name string // path, as it appears in problems
	Data []byte // content
}

// ReadDir returns the rule files of dir (*.yaml and *.yml, not hidden, not
// editor backups), sorted by name.
func ReadDir(dir string) ([]SourceFile, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("read rules directory %s: %w", dir, err)
	}
	var files []SourceFile
	for _, e := range entries {
		if e.IsDir() || !isRuleFile(e.Name()) {
			continue
		}
		p := filepath.Join(dir, e.Name())
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("read rule file %s: %w", p, err)
		}
		files = append(files, SourceFile{Name: p, Data: data})
	}
	sort.Slice(files, func(i, j int) bool { return files[i].Name < files[j].Name })
	return files, nil
}

// ReadFS returns the rule files at the root of fsys (an embedded rule pack), as
// ReadDir does for a directory; their names, as problems show them, are label/name.
func ReadFS(fsys fs.FS, label string) ([]SourceFile, error) {
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, fmt.Errorf("read rules %s: %w", label, err)
	}
	var files []SourceFile
	for _, e := range entries {
		if e.IsDir() || !isRuleFile(e.Name()) {
			continue
		}
		data, err := fs.ReadFile(fsys, e.Name())
		if err != nil {
			return nil, fmt.Errorf("read rule file %s/%s: %w", label, e.Name(), err)
		}
		files = append(files, SourceFile{Name: label + "/" + e.Name(), Data: data})
	}
	sort.Slice(files, func(i, j int) bool { return files[i].Name < files[j].Name })
	return files, nil
}

func isRuleFile(name string) bool {
	if strings.HasPrefix(name, ".") || strings.HasPrefix(name, "#") || strings.HasSuffix(name, "~") {
		return false
	}
	ext := filepath.Ext(name)
	return ext == ".yaml" || ext == ".yml"
}

// Load reads and compiles the rule files of dir. On any problem it returns a
// *LoadError listing them all with file:line.
func Load(dir string, opts LoadOptions) (*RuleSet, error) {
	files, err := ReadDir(dir)
	if err != nil {
		return nil, err
	}
	return compileFrom(dir, files, opts)
}

// LoadFS is Load over the rule files at the root of fsys; label stands for the
// directory in problems and in RuleSet.Dir.
func LoadFS(fsys fs.FS, label string, opts LoadOptions) (*RuleSet, error) {
	files, err := ReadFS(fsys, label)
	if err != nil {
		return nil, err
	}
	return compileFrom(label, files, opts)
}

func compileFrom(dir string, files []SourceFile, opts LoadOptions) (*RuleSet, error) {
	rs, err := Compile(files, opts)
	if rs != nil {
		rs.Dir = dir
	}
	var le *LoadError
	if errors.As(err, &le) {
		le.Dir = dir
	}
	return rs, err
}

// Version returns the content hash of files: what RuleSet.Version would be.
func Version(files []SourceFile) string {
	h := sha256.New()
	for _, f := range files {
		h.Write([]byte(filepath.Base(f.Name)))
		h.Write([]byte{0})
		h.Write(f.Data)
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// ---- YAML documents ----

type fileDoc struct {
	Timezone   string         `yaml:"timezone"`
	Owner      string         `yaml:"owner"`
	Counters   []counterDoc   `yaml:"counters"`
	Thresholds *thresholdsDoc `yaml:"thresholds"`
	TestBase   yaml.Node      `yaml:"test_base"`
	Rules      []ruleDoc      `yaml:"rules"`
}

type counterDoc struct {
	Name        string    `yaml:"name"`
	Description string    `yaml:"description"`
	Dimension   yaml.Node `yaml:"dimension"`
	Measure     string    `yaml:"measure"`
	Window      string    `yaml:"window"`
	Resolution  string    `yaml:"resolution"`
	Where       string    `yaml:"where"`
}

type thresholdsDoc struct {
	ID           string `yaml:"id"`
	Description  string `yaml:"description"`
	Review       int    `yaml:"review"`
	Decline      int    `yaml:"decline"`
	ResponseCode string `yaml:"response_code"`
	Reason       string `yaml:"reason"`
	Mode         string `yaml:"mode"`
}

type ruleDoc struct {
	ID           string    `yaml:"id"`
	Description  string    `yaml:"description"`
	Condition    string    `yaml:"condition"`
	Action       string    `yaml:"action"`
	ResponseCode string    `yaml:"response_code"`
	Score        yaml.Node `yaml:"score"`
	Reason       string    `yaml:"reason"`
	Mode         string    `yaml:"mode"`
	Owner        string    `yaml:"owner"`
	Tests        []testDoc `yaml:"tests"`
}

type testDoc struct {
	Name     string          `yaml:"name"`
	Input    yaml.Node       `yaml:"input"`
	Velocity map[string]int  `yaml:"velocity"`
	History  []historyDoc    `yaml:"history"`
	Expect   string          `yaml:"expect"`
	Decision *ExpectDecision `yaml:"decision"`
}

type historyDoc struct {
	Input    yaml.Node `yaml:"input"`
	Outcome  *Outcome  `yaml:"outcome"`
	Repeat   int       `yaml:"repeat"`
	Every    string    `yaml:"every"`
	Ago      string    `yaml:"ago"`
	VaryCard bool      `yaml:"vary_card"`
}

// ---- compilation ----

var (
	idPattern     = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$`)
	reasonPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,63}$`)
	namePattern   = regexp.MustCompile(`^[a-z][a-z0-9_]{0,63}$`)
	codePattern   = regexp.MustCompile(`^[0-9A-Z]{2}$`)
)

// compiler collects problems while compiling a set of files.
type compiler struct {
	problems []Problem
	warnings []Problem
	opts     LoadOptions
}

func (c *compiler) errorf(file string, line int, format string, a ...any) {
	c.problems = append(c.problems, Problem{File: file, Line: line, Message: fmt.Sprintf(format, a...)})
}

func (c *compiler) warnf(file string, line int, format string, a ...any) {
	c.warnings = append(c.warnings, Problem{File: file, Line: line, Message: fmt.Sprintf(format, a...)})
}

// parsedFile is one file after YAML decoding, with the nodes that give lines.
type parsedFile struct {
	name  string
	lines []string // the file's lines, to place errors inside folded expressions
	doc   fileDoc
	root  *yaml.Node // the top-level mapping
}

// Compile compiles rule files given in load order. On any problem it returns a
// *LoadError listing them all with file:line.
func Compile(files []SourceFile, opts LoadOptions) (*RuleSet, error) {
	c := &compiler{opts: opts}
	rs := &RuleSet{
		Version:       Version(files),
		counterByName: map[string]*Counter{},
		lists:         opts.Lists,
		LoadedAt:      time.Now().UTC(),
	}
	var parsed []*parsedFile
	for _, f := range files {
		rs.Files = append(rs.Files, f.Name)
		if pf := c.parseFile(f); pf != nil {
			parsed = append(parsed, pf)
		}
	}
	if len(files) == 0 {
		c.warnf("", 0, "no rule files (*.yaml, *.yml): the rule set is empty")
	}
	// Time zone.
	rs.Location = opts.Location
	if rs.Location == nil {
		rs.Location = time.UTC
	}
	tzFrom := ""
	for _, pf := range parsed {
		if pf.doc.Timezone == "" {
			continue
		}
		line := keyLine(pf.root, "timezone")
		loc, err := time.LoadLocation(pf.doc.Timezone)
		if err != nil {
			c.errorf(pf.name, line, "timezone %q: %v", pf.doc.Timezone, err)
			continue
		}
		if tzFrom != "" && loc.String() != rs.Location.String() {
			c.errorf(pf.name, line, "timezone %q differs from %q declared in %s", pf.doc.Timezone, rs.Location, tzFrom)
			continue
		}
		rs.Location, tzFrom = loc, pf.name
	}
	rs.TimeZone = rs.Location.String()
	// Counters first: rules refer to them.
	for _, pf := range parsed {
		c.compileCounters(rs, pf)
	}
	index := map[string]int{}
	for _, ctr := range rs.Counters {
		index[ctr.Name] = ctr.Index
	}
	seen := map[string]string{}
	for fi, pf := range parsed {
		rs.Thresholds = append(rs.Thresholds, c.compileThresholds(pf, seen))
		for i := range pf.doc.Rules {
			if r := c.compileRule(rs, pf, i, fi, index, seen); r != nil {
				rs.Rules = append(rs.Rules, r)
			}
		}
	}
	for _, ctr := range rs.Counters {
		if !ctr.used {
			c.warnf(ctr.File, ctr.Line, "counter %s is declared but no rule reads it", ctr.Name)
		}
	}
	// Tests need the whole set (counters, other rules) to be compiled.
	if len(c.problems) == 0 {
		for _, pf := range parsed {
			c.compileTests(rs, pf)
		}
	}
	if len(c.problems) > 0 {
		return nil, &LoadError{Problems: c.problems, Warnings: c.warnings}
	}
	rs.Warnings = c.warnings
	for _, ctr := range rs.Counters {
		if ctr.used {
			rs.readCounters = append(rs.readCounters, ctr)
		}
		if ctr.Window > rs.maxWindow {
			rs.maxWindow = ctr.Window
		}
	}
	return rs, nil
}

func (c *compiler) parseFile(f SourceFile) *parsedFile {
	pf := &parsedFile{name: f.Name, lines: strings.Split(string(f.Data), "\n")}
	var root yaml.Node
	if err := yaml.Unmarshal(f.Data, &root); err != nil {
		c.yamlError(f.Name, err)
		return nil
	}
	if len(root.Content) == 0 {
		c.warnf(f.Name, 0, "empty rule file")
		return nil
	}
	top := root.Content[0]
	if top.Kind != yaml.MappingNode {
		c.errorf(f.Name, top.Line, "a rule file is a mapping with a top-level rules: list, not a %s", kindName(top.Kind))
		return nil
	}
	pf.root = top
	dec := yaml.NewDecoder(bytes.NewReader(f.Data))
	dec.KnownFields(true)
	if err := dec.Decode(&pf.doc); err != nil {
		n0 := len(c.problems)
		c.yamlError(f.Name, err)
		lines := pf.lines
		for i := n0; i < len(c.problems); i++ {
			p := &c.problems[i]
			if p.Line > 0 && p.Line <= len(lines) && strings.Contains(lines[p.Line-1], "{") && strings.Contains(p.Message, "not found in type") {
				p.Message += " (inside { }, a comma ends a value: quote values that contain commas)"
			}
		}
		var te *yaml.TypeError
		if !errors.As(err, &te) {
			return nil
		}
		// Unknown or mistyped keys: the rest of the file decoded, so go on
		// and report its other problems too.
	}
	if keyNode(top, "rules") == nil && len(pf.doc.Counters) == 0 {
		c.errorf(f.Name, top.Line, "no top-level rules: list")
	}
	return pf
}

var yamlLine = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)

// yamlError turns a yaml.v3 error into problems with file:line.
func (c *compiler) yamlError(name string, err error) {
	var te *yaml.TypeError
	msgs := []string{err.Error()}
	if errors.As(err, &te) {
		msgs = te.Errors
	}
	for _, m := range msgs {
		if sm := yamlLine.FindStringSubmatch(m); sm != nil {
			line, _ := strconv.Atoi(sm[1])
			msg := strings.NewReplacer("risk.ruleDoc", "rule", "risk.fileDoc", "rule file", "risk.counterDoc", "counter",
				"risk.thresholdsDoc", "thresholds", "risk.testDoc", "test", "risk.historyDoc", "history step",
				"risk.ExpectDecision", "decision", "risk.Outcome", "outcome").Replace(sm[2])
			c.errorf(name, line, "%s", msg)
			continue
		}
		c.errorf(name, 0, "%s", strings.TrimPrefix(m, "yaml: "))
	}
}

func kindName(k yaml.Kind) string {
	switch k {
	case yaml.SequenceNode:
		return "list"
	case yaml.ScalarNode:
		return "scalar"
	case yaml.MappingNode:
		return "mapping"
	}
	return "document"
}

// keyNode returns the value node of key in mapping m, or nil.
func keyNode(m *yaml.Node, key string) *yaml.Node {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

func keyLine(m *yaml.Node, key string) int {
	if n := keyNode(m, key); n != nil {
		return n.Line
	}
	if m != nil {
		return m.Line
	}
	return 0
}

// item returns the i-th element of the sequence under key in m.
func item(m *yaml.Node, key string, i int) *yaml.Node {
	s := keyNode(m, key)
	if s == nil || s.Kind != yaml.SequenceNode || i >= len(s.Content) {
		return m
	}
	return s.Content[i]
}

// exprPos maps a position inside an expression (1-based line, 0-based
// column) to file line and 1-based column, given the YAML node holding the
// expression and the file's lines.
func exprPos(n *yaml.Node, lines []string, line, col int) (int, int) {
	if n == nil {
		return 0, 0
	}
	switch n.Style {
	case yaml.FoldedStyle:
		// Folding joined the block's lines with spaces: walk them.
		if line == 1 {
			pos := 0
			for i := n.Line; i < len(lines); i++ {
				t := strings.TrimSpace(lines[i])
				if t == "" {
					continue
				}
				l := len([]rune(t))
				if col < pos+l+1 {
					indent := len([]rune(lines[i])) - len([]rune(strings.TrimLeft(lines[i], " ")))
					return i + 1, indent + col - pos + 1
				}
				pos += l + 1
			}
		}
		return n.Line + 1, 0
	case yaml.LiteralStyle:
		if line >= 1 && n.Line+line-1 < len(lines) {
			first := lines[n.Line] // the block's indentation is its first line's
			indent := len([]rune(first)) - len([]rune(strings.TrimLeft(first, " ")))
			return n.Line + line, indent + col + 1
		}
		return n.Line + line, 0
	case yaml.DoubleQuotedStyle, yaml.SingleQuotedStyle:
		if line <= 1 {
			return n.Line, n.Column + 1 + col
		}
	default:
		if line <= 1 {
			return n.Line, n.Column + col
		}
	}
	return n.Line + line - 1, 0
}

func parseWindow(s string) (time.Duration, error) {
	if s == "" {
		return 0, errors.New("missing")
	}
	mult := time.Duration(0)
	switch {
	case strings.HasSuffix(s, "d"):
		mult = 24 * time.Hour
	case strings.HasSuffix(s, "w"):
		mult = 7 * 24 * time.Hour
	}
	if mult > 0 {
		n, err := strconv.Atoi(strings.TrimSpace(s[:len(s)-1]))
		if err != nil || n <= 0 {
			return 0, fmt.Errorf("%q: want a positive whole number of days or weeks, like 30d or 2w", s)
		}
		return time.Duration(n) * mult, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q: want a duration like 10m, 1h, 24h or 30d", s)
	}
	if d <= 0 {
		return 0, fmt.Errorf("%q: must be positive", s)
	}
	return d, nil
}

func (c *compiler) compileCounters(rs *RuleSet, pf *parsedFile) {
	for i, d := range pf.doc.Counters {
		node := item(pf.root, "counters", i)
		line := node.Line
		if !namePattern.MatchString(d.Name) {
			c.errorf(pf.name, line, "counter name %q: want lower-case letters, digits and _ starting with a letter", d.Name)
			continue
		}
		if prev := rs.counterByName[d.Name]; prev != nil {
			c.errorf(pf.name, line, "counter %s is declared twice (first at %s:%d)", d.Name, prev.File, prev.Line)
			continue
		}
		ctr := &Counter{Name: d.Name, Description: d.Description, Measure: d.Measure, Where: strings.TrimSpace(d.Where), File: pf.name, Line: line}
		ok := true
		switch d.Dimension.Kind {
		case yaml.ScalarNode:
			ctr.Dimensions = []string{d.Dimension.Value}
		case yaml.SequenceNode:
			for _, e := range d.Dimension.Content {
				ctr.Dimensions = append(ctr.Dimensions, e.Value)
			}
		}
		if len(ctr.Dimensions) == 0 {
			c.errorf(pf.name, line, "counter %s: dimension missing (card, terminal, merchant, device, or a list of them)", d.Name)
			ok = false
		}
		seenDim := map[string]bool{}
		for _, dim := range ctr.Dimensions {
			if _, known := dimSalt[dim]; !known {
				c.errorf(pf.name, line, "counter %s: unknown dimension %q (want card, terminal, merchant or device)", d.Name, dim)
				ok = false
			} else if seenDim[dim] {
				c.errorf(pf.name, line, "counter %s: dimension %s given twice", d.Name, dim)
				ok = false
			}
			seenDim[dim] = true
		}
		switch d.Measure {
		case MeasureCount, MeasureSum, MeasureDistinctCards:
		case "":
			ctr.Measure = MeasureCount
		default:
			c.errorf(pf.name, line, "counter %s: unknown measure %q (want count, sum or distinct_cards)", d.Name, d.Measure)
			ok = false
		}
		w, err := parseWindow(d.Window)
		if err != nil {
			c.errorf(pf.name, line, "counter %s: window %v", d.Name, err)
			ok = false
		}
		ctr.Window = w
		ctr.Resolution = w / 30
		if d.Resolution != "" {
			r, err := parseWindow(d.Resolution)
			if err != nil {
				c.errorf(pf.name, line, "counter %s: resolution %v", d.Name, err)
				ok = false
			} else if r > w {
				c.errorf(pf.name, line, "counter %s: resolution %s is longer than the window %s", d.Name, d.Resolution, d.Window)
				ok = false
			}
			ctr.Resolution = r
		}
		if ctr.Resolution < time.Second {
			ctr.Resolution = time.Second
		}
		if ctr.Where != "" {
			prog, problems := compileExpr(ctr.Where, exprWhere, pf.name, keyNode(node, "where"), pf.lines, nil, c.opts.Lists, fmt.Sprintf("counter %s: where", d.Name))
			c.problems = append(c.problems, problems...)
			ctr.where = prog
			ok = ok && prog != nil
		}
		if !ok {
			continue
		}
		if len(rs.Counters) >= MaxCounters {
			c.errorf(pf.name, line, "counter %s: a rule set may declare at most %d counters", d.Name, MaxCounters)
			continue
		}
		ctr.Index = len(rs.Counters)
		nb := int64((ctr.Window + ctr.Resolution - 1) / ctr.Resolution)
		fp := xxhash.Sum64String(strings.Join([]string{ctr.Name, strings.Join(ctr.Dimensions, "+"), ctr.Measure,
			ctr.Window.String(), ctr.Resolution.String(), ctr.Where}, "\x00"))
		ctr.spec = counterSpec{fp: fp, measure: ctr.Measure, dims: ctr.Dimensions, window: ctr.Window, width: int64(ctr.Resolution), nb: nb}
		if ctr.where != nil {
			src := strings.Join(strings.Fields(ctr.Where), " ")
			id, seen := rs.whereIDs[src]
			if !seen {
				if rs.whereIDs == nil {
					rs.whereIDs = map[string]int{}
				}
				id = len(rs.whereIDs)
				rs.whereIDs[src] = id
			}
			ctr.whereID = id
		}
		rs.Counters = append(rs.Counters, ctr)
		rs.counterByName[ctr.Name] = ctr
	}
}

func (c *compiler) compileThresholds(pf *parsedFile, seen map[string]string) *Thresholds {
	d := pf.doc.Thresholds
	if d == nil {
		return nil
	}
	line := keyLine(pf.root, "thresholds")
	base := strings.TrimSuffix(filepath.Base(pf.name), filepath.Ext(pf.name))
	t := &Thresholds{ID: d.ID, Review: d.Review, Decline: d.Decline, ResponseCode: d.ResponseCode, Reason: d.Reason, Mode: Mode(d.Mode), File: pf.name, Line: line}
	if t.ID == "" {
		t.ID = "score:" + base
	}
	if !idPattern.MatchString(t.ID) {
		c.errorf(pf.name, line, "thresholds id %q: want letters, digits and _ . : - (at most 64)", t.ID)
	}
	if prev, dup := seen[t.ID]; dup {
		c.errorf(pf.name, line, "thresholds id %s is used twice (first at %s)", t.ID, prev)
	}
	seen[t.ID] = fmt.Sprintf("%s:%d", pf.name, line)
	if t.Review < 0 || t.Decline < 0 || (t.Review == 0 && t.Decline == 0) {
		c.errorf(pf.name, line, "thresholds: give review and/or decline as positive scores")
	}
	if t.Review > 0 && t.Decline > 0 && t.Review >= t.Decline {
		c.errorf(pf.name, line, "thresholds: review (%d) must be below decline (%d)", t.Review, t.Decline)
	}
	if t.ResponseCode == "" {
		t.ResponseCode = "05"
	} else if !codePattern.MatchString(t.ResponseCode) || t.ResponseCode == "00" {
		c.errorf(pf.name, line, "thresholds: response_code %q: want two characters like \"05\" or \"59\", not 00", t.ResponseCode)
	}
	if t.Reason == "" {
		t.Reason = t.ID
	} else if !reasonPattern.MatchString(t.Reason) {
		c.errorf(pf.name, line, "thresholds: reason %q: want letters, digits and _ . : / - (at most 64), no spaces", t.Reason)
	}
	switch t.Mode {
	case "":
		t.Mode = ModeEnforce
	case ModeEnforce, ModeShadow:
	default:
		c.errorf(pf.name, line, "thresholds: mode %q: want enforce or shadow", d.Mode)
	}
	return t
}

func (c *compiler) compileRule(rs *RuleSet, pf *parsedFile, i, fi int, index map[string]int, seen map[string]string) *Rule {
	d := pf.doc.Rules[i]
	node := item(pf.root, "rules", i)
	line := node.Line
	n0 := len(c.problems)
	r := &Rule{ID: d.ID, Description: strings.TrimSpace(d.Description), Condition: strings.TrimSpace(d.Condition),
		Action: Action(d.Action), ResponseCode: d.ResponseCode, Reason: d.Reason, Mode: Mode(d.Mode),
		Owner: d.Owner, File: pf.name, Line: line, fileIdx: fi}
	what := "rule " + d.ID
	switch {
	case d.ID == "":
		c.errorf(pf.name, line, "rule #%d: id missing", i+1)
		what = fmt.Sprintf("rule #%d", i+1)
	case !idPattern.MatchString(d.ID):
		c.errorf(pf.name, line, "rule id %q: want letters, digits and _ . : - (at most 64)", d.ID)
	default:
		if prev, dup := seen[d.ID]; dup {
			c.errorf(pf.name, line, "rule id %s is used twice (first at %s)", d.ID, prev)
		}
		seen[d.ID] = fmt.Sprintf("%s:%d", pf.name, line)
	}
	switch r.Action {
	case ActionDecline, ActionReview, ActionAlert, ActionAllow:
	case "":
		c.errorf(pf.name, line, "%s: action missing (decline, review, alert or allow)", what)
	default:
		c.errorf(pf.name, keyLine(node, "action"), "%s: unknown action %q (want decline, review, alert or allow)", what, d.Action)
	}
	switch {
	case r.Action == ActionDecline && r.ResponseCode == "":
		r.ResponseCode = "05"
	case r.Action == ActionDecline && (!codePattern.MatchString(r.ResponseCode) || r.ResponseCode == "00"):
		c.errorf(pf.name, keyLine(node, "response_code"), "%s: response_code %q: want two characters like \"05\" or \"61\", not 00", what, r.ResponseCode)
	case r.Action != ActionDecline && r.ResponseCode != "" && r.Action.Rank() > 0:
		c.errorf(pf.name, keyLine(node, "response_code"), "%s: response_code applies only to action decline, not %s", what, r.Action)
	}
	if r.Reason == "" {
		r.Reason = r.ID
	} else if !reasonPattern.MatchString(r.Reason) {
		c.errorf(pf.name, keyLine(node, "reason"), "%s: reason %q: want letters, digits and _ . : / - (at most 64), no spaces: it goes to DE 48 RS", what, r.Reason)
	}
	switch r.Mode {
	case "":
		r.Mode = ModeEnforce
	case ModeEnforce, ModeShadow:
	default:
		c.errorf(pf.name, keyLine(node, "mode"), "%s: mode %q: want enforce or shadow", what, d.Mode)
	}
	if r.Owner == "" {
		r.Owner = pf.doc.Owner
	}
	if r.Condition == "" {
		c.errorf(pf.name, line, "%s: condition missing", what)
	} else {
		prog, problems := compileExpr(r.Condition, exprCondition, pf.name, keyNode(node, "condition"), pf.lines, rs, c.opts.Lists, what+": condition")
		c.problems = append(c.problems, problems...)
		r.prog = prog
		r.Refs = refsOf(r.Condition)
	}
	if sn := keyNode(node, "score"); sn != nil {
		if sn.Kind != yaml.ScalarNode {
			c.errorf(pf.name, sn.Line, "%s: score: want a whole number or an expression", what)
		} else if v, err := strconv.Atoi(sn.Value); err == nil {
			r.Score = v
		} else {
			r.ScoreExpr = strings.TrimSpace(sn.Value)
			prog, problems := compileExpr(r.ScoreExpr, exprScore, pf.name, sn, pf.lines, rs, c.opts.Lists, what+": score")
			c.problems = append(c.problems, problems...)
			r.scoreProg = prog
			r.Refs = mergeRefs(r.Refs, refsOf(r.ScoreExpr))
		}
	}
	if r.Score < 0 {
		c.errorf(pf.name, keyLine(node, "score"), "%s: score %d is negative", what, r.Score)
	}
	for _, ref := range r.Refs {
		if name, ok := strings.CutPrefix(ref, "velocity."); ok {
			if ctr := rs.counterByName[name]; ctr != nil {
				ctr.used = true
			}
		}
		if strings.HasPrefix(ref, "lists.") {
			rs.usesLists = true
		}
	}
	if strings.Contains(r.Condition, "in_list") || strings.Contains(r.ScoreExpr, "in_list") {
		rs.usesLists = true
	}
	if len(d.Tests) == 0 && len(c.problems) == n0 {
		c.warnf(pf.name, line, "%s has no tests", what)
	}
	if len(c.problems) > n0 {
		return nil
	}
	return r
}

// ---- expressions ----

type exprKind int

const (
	exprCondition exprKind = iota
	exprScore
	exprWhere
)

// vmPool holds VMs for reuse: a VM must not be shared by goroutines.
var vmPool = newVMPool()

// envRoots are the top-level names of the expression environment.
var envRoots = map[string]bool{"txn": true, "terminal": true, "merchant": true, "binding": true, "device": true, "velocity": true, "lists": true, "outcome": true}

// compileExpr checks and compiles one expression. node is the YAML node that
// holds it, for file:line in problems.
func compileExpr(src string, kind exprKind, fileName string, node *yaml.Node, lines []string, rs *RuleSet, lists *Lists, what string) (*vm.Program, []Problem) {
	var problems []Problem
	report := func(loc file.Location, msg string) {
		line, col := 1, 0
		for i, r := range []rune(src) {
			if i >= loc.From {
				break
			}
			if r == '\n' {
				line++
				col = 0
			} else {
				col++
			}
		}
		fl, fc := exprPos(node, lines, line, col)
		problems = append(problems, Problem{File: fileName, Line: fl, Column: fc, Message: what + ": " + msg})
	}
	tree, err := parser.Parse(src)
	if err != nil {
		var fe *file.Error
		if errors.As(err, &fe) {
			fl, fc := exprPos(node, lines, fe.Line, fe.Column)
			return nil, []Problem{{File: fileName, Line: fl, Column: fc, Message: what + ": " + cleanExprMessage(fe.Message) + fe.Snippet}}
		}
		return nil, []Problem{{File: fileName, Line: exprLine(node), Message: what + ": " + err.Error()}}
	}
	index := map[string]int{}
	if rs != nil {
		for _, ctr := range rs.Counters {
			index[ctr.Name] = ctr.Index
		}
	}
	lint := &linter{kind: kind, index: index, report: report}
	ast.Walk(&tree.Node, lint)
	if lint.velocityMembers < lint.velocityIdents {
		report(file.Location{}, "velocity is read as velocity.COUNTER, with COUNTER a declared counter")
	}
	if len(problems) > 0 {
		return nil, problems
	}
	opts := exprOptions(lists)
	opts = append(opts, expr.Patch(&velocityPatcher{index: index}))
	switch kind {
	case exprScore:
		opts = append(opts, expr.AsInt())
	default:
		opts = append(opts, expr.AsBool())
	}
	prog, err := expr.Compile(src, opts...)
	if err != nil {
		var fe *file.Error
		if errors.As(err, &fe) {
			fl, fc := exprPos(node, lines, fe.Line, fe.Column)
			return nil, []Problem{{File: fileName, Line: fl, Column: fc, Message: what + ": " + cleanExprMessage(fe.Message) + fe.Snippet}}
		}
		return nil, []Problem{{File: fileName, Line: exprLine(node), Message: what + ": " + cleanExprMessage(err.Error())}}
	}
	return prog, nil
}

func exprLine(n *yaml.Node) int {
	if n == nil {
		return 0
	}
	return n.Line
}

var exprTypeNames = strings.NewReplacer(
	"risk.Input", "the rule environment", "risk.Txn", "txn", "risk.Terminal", "terminal",
	"risk.Merchant", "merchant", "risk.Binding", "binding", "risk.Device", "device",
	"risk.ListFlags", "lists", "risk.Outcome", "outcome", "[64]int", "velocity")

func cleanExprMessage(m string) string { return exprTypeNames.Replace(m) }

// linter checks what the expr type checker cannot: counter names, names that
// are not available in this kind of expression, constant arguments.
type linter struct {
	kind            exprKind
	index           map[string]int
	report          func(file.Location, string)
	velocityIdents  int
	velocityMembers int
}

// Visit implements ast.Visitor.
func (l *linter) Visit(node *ast.Node) {
	switch n := (*node).(type) {
	case *ast.IdentifierNode:
		switch n.Value {
		case "velocity":
			l.velocityIdents++
			if l.kind == exprWhere {
				l.report(n.Location(), "velocity is not available in a counter's where filter")
			}
		case "lists":
			if l.kind == exprWhere {
				l.report(n.Location(), "lists is not available in a counter's where filter")
			}
		case "outcome":
			if l.kind != exprWhere {
				l.report(n.Location(), "outcome is only available in a counter's where filter (rules run before the answer is known)")
			}
		}
	case *ast.MemberNode:
		id, ok := n.Node.(*ast.IdentifierNode)
		if !ok || id.Value != "velocity" {
			return
		}
		s, ok := n.Property.(*ast.StringNode)
		if !ok {
			return
		}
		l.velocityMembers++
		if _, ok := l.index[s.Value]; !ok && l.kind != exprWhere {
			names := make([]string, 0, len(l.index))
			for k := range l.index {
				names = append(names, k)
			}
			sort.Strings(names)
			declared := "no counters are declared"
			if len(names) > 0 {
				declared = "declared: " + strings.Join(names, ", ")
			}
			l.report(n.Location(), fmt.Sprintf("unknown counter velocity.%s (%s)", s.Value, declared))
		}
	case *ast.CallNode:
		id, ok := n.Callee.(*ast.IdentifierNode)
		if !ok {
			return
		}
		switch id.Value {
		case "time_between":
			for _, a := range n.Arguments[min(1, len(n.Arguments)):] {
				if s, ok := a.(*ast.StringNode); ok && !validHHMM(s.Value) {
					l.report(a.Location(), fmt.Sprintf("time_between: %q is not a time like \"22:30\"", s.Value))
				}
			}
		case "hour_between":
			for _, a := range n.Arguments[min(1, len(n.Arguments)):] {
				if v, ok := a.(*ast.IntegerNode); ok && (v.Value < 0 || v.Value > 24) {
					l.report(a.Location(), fmt.Sprintf("hour_between: hour %d is not in 0..24", v.Value))
				}
			}
		case "in_list":
			if len(n.Arguments) >= 2 {
				if s, ok := n.Arguments[1].(*ast.StringNode); ok && !validListKind(s.Value) {
					l.report(n.Arguments[1].Location(), fmt.Sprintf("in_list: unknown kind %q (want bin, card, terminal, merchant or country)", s.Value))
				}
			}
		}
	}
}

func validHHMM(s string) bool {
	if len(s) != 5 || s[2] != ':' {
		return false
	}
	h, err1 := strconv.Atoi(s[:2])
	m, err2 := strconv.Atoi(s[3:])
	return err1 == nil && err2 == nil && h >= 0 && h <= 24 && m >= 0 && m < 60 && (h < 24 || m == 0)
}

// velocityPatcher rewrites velocity.NAME to velocity[INDEX] so that a rule
// reads a counter by its slot, with no lookup by name at run time.
type velocityPatcher struct{ index map[string]int }

// Visit implements ast.Visitor.
func (p *velocityPatcher) Visit(node *ast.Node) {
	m, ok := (*node).(*ast.MemberNode)
	if !ok {
		return
	}
	id, ok := m.Node.(*ast.IdentifierNode)
	if !ok || id.Value != "velocity" {
		return
	}
	s, ok := m.Property.(*ast.StringNode)
	if !ok {
		return
	}
	if i, ok := p.index[s.Value]; ok {
		ast.Patch(node, &ast.MemberNode{Node: id, Property: &ast.IntegerNode{Value: i}})
	}
}

// refsOf lists the environment paths an expression reads, like "txn.amount".
func refsOf(src string) []string {
	tree, err := parser.Parse(src)
	if err != nil {
		return nil
	}
	c := &refCollector{seen: map[string]bool{}}
	ast.Walk(&tree.Node, c)
	sort.Strings(c.refs)
	return c.refs
}

type refCollector struct {
	refs []string
	seen map[string]bool
}

// Visit implements ast.Visitor: it records member accesses on the roots.
func (c *refCollector) Visit(node *ast.Node) {
	m, ok := (*node).(*ast.MemberNode)
	if !ok {
		return
	}
	id, ok := m.Node.(*ast.IdentifierNode)
	if !ok || !envRoots[id.Value] {
		return
	}
	s, ok := m.Property.(*ast.StringNode)
	if !ok {
		return
	}
	ref := id.Value + "." + s.Value
	if !c.seen[ref] {
		c.seen[ref] = true
		c.refs = append(c.refs, ref)
	}
}

func mergeRefs(a, b []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range append(append([]string{}, a...), b...) {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	sort.Strings(out)
	return out
}
