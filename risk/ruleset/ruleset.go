package ruleset

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/expr-lang/expr/vm"

	"github.com/switchyard/switchyard/internal/boundfile"
	"github.com/switchyard/switchyard/risk/state"
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
	ID           string `json:"id"`                      // unique in the set
	Description  string `json:"description,omitempty"`   // for people
	Condition    string `json:"condition"`               // the expr source
	Action       Action `json:"action"`                  // what a hit asks for
	ResponseCode string `json:"response_code,omitempty"` // DE 39 of a decline
	Score        int    `json:"score"`                   // fixed score of a hit (when ScoreExpr is "")
	ScoreExpr    string `json:"score_expr,omitempty"`    // score expression, if the score is one
	Reason       string `json:"reason"`                  // DE 48 RS of a decline
	Mode         Mode   `json:"mode"`                    // enforce or shadow
	// OnError is what a run-time failure of the condition makes of the rule: ""
	// (on_error: miss, the default) counts it as not hit (the rule fails open);
	// ActionReview or ActionDecline count it as a hit with that action, the
	// rule's reason and no score (it fails closed).
	OnError Action     `json:"on_error,omitempty"`
	Owner   string     `json:"owner,omitempty"` // who to ask about the rule
	File    string     `json:"file"`            // rule file
	Line    int        `json:"line"`            // line of the rule in File
	Tests   []TestCase `json:"-"`               // the rule's test cases
	// Refs are the input names the condition and score read, like "txn.amount".
	Refs []string `json:"refs"`

	prog      *vm.Program
	scoreProg *vm.Program
	fileIdx   int
	// onErrorCode is DE 39 of an on_error: decline hit: the rule's response_code
	// when it declines, else 05.
	onErrorCode string
	// velMask has the bit of each counter (by index) the condition reads: a rule
	// that reads one of them in doubt may run again (doubtError).
	velMask uint64
	// velInc and velDec have the bits of the counters of velMask the condition
	// never decreases (a hit stays a hit), resp. never increases with; a counter
	// it does not read is in both, one it moves both ways with (a band such as
	// velocity.x > 3 && velocity.x < 10) in neither (monotone).
	velInc, velDec uint64
	// scoreMask, scoreInc and scoreDec are the same for the score expression.
	scoreMask, scoreInc, scoreDec uint64
}

// onErrorCodeOf is DE 39 of a hit of rule r with action a (an on_error): r's
// response_code when a and r both decline, else 05 for a decline.
func onErrorCodeOf(a Action, r *Rule) string {
	switch {
	case a != ActionDecline:
		return ""
	case r.Action == ActionDecline:
		return r.ResponseCode
	}
	return "05"
}

// Counter is one declared velocity counter.
type Counter struct {
	Name        string        `json:"name"`                  // velocity.NAME
	Description string        `json:"description,omitempty"` // for people
	Dimensions  []string      `json:"dimension"`             // card, terminal, merchant, device, merchant_group, bin, region
	Measure     string        `json:"measure"`               // count, sum or distinct_cards
	Window      time.Duration `json:"window"`                // sliding window
	Resolution  time.Duration `json:"resolution"`            // bucket width
	Where       string        `json:"where,omitempty"`       // filter expression, "" = all
	Retract     []string      `json:"retract,omitempty"`     // what takes a transaction back out: void, reversal, refund
	// OnError is what a run-time failure of Where makes of the transaction and of
	// the rules that read the counter: "" (on_error: miss, the default) does not
	// count the transaction and nothing more; ActionReview or ActionDecline do not
	// count it either, but record its key's count as in doubt for the window
	// (state.Velocity.MarkFiltered), and a rule that reads the counter for that
	// key, or for a key evicted from a full store, and could hit on what the count
	// lacks takes the stronger of its own on_error and this one.
	OnError Action `json:"on_error,omitempty"`
	File    string `json:"file"` // rule file
	Line    int    `json:"line"` // line of the declaration
	// Index is the counter's slot in Input.Velocity.
	Index int `json:"index"`

	spec    state.CounterSpec
	where   *vm.Program
	whereID int // counters with the same filter share its result per transaction
	used    bool
	// whereVelocity: the where filter reads counters (velocity.NAME), which
	// Observe reads (RuleSet.whereReads) before it counts the transaction.
	whereVelocity bool
	// readByWhere: some counter's where filter reads this counter.
	readByWhere bool
	// whereMask has the bit of each counter (by index) the where filter reads;
	// whereInc and whereDec those it never decreases, resp. never increases
	// with (monotone; false < true).
	whereMask, whereInc, whereDec uint64
	retract                       uint8    // retractBit of each kind in Retract
	dims                          []dimKey // Dimensions, resolved
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
	// Cost bounds the work of one transaction's evaluation and observation:
	// the sum of every expression's cost bound (MaxSetCost at most).
	Cost int64 `json:"cost"`

	counterByName map[string]*Counter
	badCounters   map[string]bool // declared with a problem: rules reading them are not blamed too
	readCounters  []*Counter      // counters some rule reads
	whereReads    []*Counter      // counters some counter's where filter reads, read by Observe
	whereIDs      map[string]int  // distinct counter filters (normalized source) -> id
	usesLists     bool
	retracts      uint8 // union of the counters' retract bits
	maxWindow     time.Duration
	lists         *state.Lists
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

// MaxWindow is the longest time back a counter of the set reads (0 without counters):
// its window, rounded up to whole buckets of its resolution.
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
	Lists *state.Lists
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
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("rules directory %s does not exist: %w", dir, err)
	}
	if err != nil {
		return nil, fmt.Errorf("read rules directory %s: %w", dir, err)
	}
	var files []SourceFile
	for _, e := range entries {
		if e.IsDir() || !IsRuleFile(e.Name()) {
			continue
		}
		p := filepath.Join(dir, e.Name())
		data, err := readRuleFile(p)
		if err != nil {
			return nil, err
		}
		files = append(files, SourceFile{Name: p, Data: data})
	}
	sort.Slice(files, func(i, j int) bool { return files[i].Name < files[j].Name })
	return files, nil
}

// MaxFileSize is the largest rule file the loader reads (the default pack's
// largest is about 40 KB): a stray log or dump named *.yaml in the rules
// directory would otherwise be read whole into the switch's memory at reload.
const MaxFileSize = 1 << 20

// readRuleFile reads a rule file of at most MaxFileSize bytes. It must be a regular
// file (a symlink to one is): opening a named pipe called *.yaml would block until
// something wrote to it, hanging rules check and the switch's reload.
func readRuleFile(p string) ([]byte, error) {
	data, err := boundfile.Read(p, MaxFileSize)
	if err != nil {
		return nil, fmt.Errorf("rule file: %w: not a rule file?", err)
	}
	return data, nil
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
		if e.IsDir() || !IsRuleFile(e.Name()) {
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

// IsRuleFile reports whether a file name is a rule file the loader reads
// (the watcher ignores changes to other files).
func IsRuleFile(name string) bool {
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
	rs, err := compileFrom(dir, files, opts)
	var le *LoadError
	switch {
	case rs != nil:
		rs.Warnings = append(rs.Warnings, lookAlikes(dir)...)
	case errors.As(err, &le):
		le.Warnings = append(le.Warnings, lookAlikes(dir)...)
	}
	return rs, err
}

// lookAlikes warns of what in dir looks meant as rules but is not read: a file
// whose extension is .yaml or .yml in another case (X.YAML), and a subdirectory
// (other than rating/, the merchant rating policy's) holding such files. The
// loader reads neither, so `rules check` said OK without them and the rule an
// analyst added there never ran.
func lookAlikes(dir string) []Problem {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var out []Problem
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ".") {
			continue
		}
		p := filepath.Join(dir, name)
		if e.IsDir() {
			if name == "rating" {
				continue
			}
			if sub, err := os.ReadDir(p); err == nil && slices.ContainsFunc(sub, func(s os.DirEntry) bool { return IsRuleFile(strings.ToLower(s.Name())) }) {
				out = append(out, Problem{File: p, Message: "a directory of *.yaml files, not read: rule files are read only directly in the rules directory"})
			}
			continue
		}
		if !IsRuleFile(name) && IsRuleFile(strings.ToLower(name)) {
			out = append(out, Problem{File: p, Message: "not read: rule files end in .yaml or .yml, in lower case"})
		}
	}
	return out
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

// ErrEmpty is what EmptyError's error wraps: a rule set without a rule.
var ErrEmpty = errors.New("no risk rule")

// EmptyError returns nil when rs has at least one rule, else an error wrapping
// ErrEmpty that names the directory and what was found in it: the rule files read
// (none, or files that declare no rule) and the look-alikes not read (X.YAML, a
// subdirectory of *.yaml). A switch on such a set approves everything with no risk
// rule at all, so the switch refuses it at start and on reload, and `rules check`
// reports it as a problem, unless told that an empty set is meant.
func (rs *RuleSet) EmptyError() error {
	if len(rs.Rules) > 0 {
		return nil
	}
	var found string
	switch len(rs.Files) {
	case 0:
		found = "no rule files (*.yaml, *.yml)"
	default:
		names := make([]string, len(rs.Files))
		for i, f := range rs.Files {
			names[i] = filepath.Base(f)
		}
		found = fmt.Sprintf("%d rule file(s) (%s) that declare no rule", len(rs.Files), strings.Join(names, ", "))
	}
	var unread []string
	for _, w := range rs.Warnings {
		if w.File != "" && (strings.HasPrefix(w.Message, "not read") || strings.HasPrefix(w.Message, "a directory of *.yaml files, not read")) {
			unread = append(unread, filepath.Base(w.File))
		}
	}
	if len(unread) > 0 {
		found += "; not read: " + strings.Join(unread, ", ") + " (rule files end in .yaml or .yml, in lower case, directly in the directory)"
	}
	return fmt.Errorf("rules directory %s: %w: found %s", rs.Dir, ErrEmpty, found)
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
