// Package risk is Switchyard's risk engine: the Engine the switch calls per
// transaction (Evaluate, then Observe once the answer is final), which owns the
// live velocity counters and lists, reloads the rule files when they change and
// flushes the counters to Badger; and the backtest and explain tools that replay
// the journal through a rule set.
//
// It is built on two packages with one job each:
//   - risk/ruleset: the rule language (Input, the YAML files, the compiler to
//     expr programs, the linter, the files' own tests) and the evaluation of a
//     compiled set;
//   - risk/state: the velocity counters and the lists, in memory and in Badger.
//
// The switch fills an Input per transaction (after its binding checks and
// before the issuer), calls Engine.Evaluate, acts on the Decision, and once the
// transaction has its final answer calls Engine.Observe so that the velocity
// counters learn about it. docs/rules.md describes the rule files and every
// name an expression sees.
package risk

import (
	"io/fs"

	"github.com/dgraph-io/badger/v4"
	"github.com/switchyard/switchyard/risk/ruleset"
	"github.com/switchyard/switchyard/risk/state"
)

// The stable facade: the names callers of package risk have always used, kept
// as aliases of their homes in ruleset and state so that the switch, the rules
// tools and the admin API compile unchanged. New code may use either.

// Types of the rule language and its results (package ruleset).
type (
	Input          = ruleset.Input          // what a rule expression sees about one transaction
	Txn            = ruleset.Txn            // the transaction (txn.*)
	Terminal       = ruleset.Terminal       // the terminal (terminal.*)
	Merchant       = ruleset.Merchant       // the merchant (merchant.*)
	Profile        = ruleset.Profile        // the merchant's learned profile (merchant.profile.*)
	Binding        = ruleset.Binding        // the binding checks (binding.*)
	Device         = ruleset.Device         // the SoftPOS device (device.*)
	Outcome        = ruleset.Outcome        // the final answer given to Observe
	Decision       = ruleset.Decision       // what the rules say about one transaction
	Hit            = ruleset.Hit            // one rule whose condition was true
	RuleError      = ruleset.RuleError      // a rule that failed at run time
	Action         = ruleset.Action         // allow, alert, review, decline
	Mode           = ruleset.Mode           // enforce or shadow
	Rule           = ruleset.Rule           // one compiled rule
	Counter        = ruleset.Counter        // one declared velocity counter
	Thresholds     = ruleset.Thresholds     // a file's score thresholds
	RuleSet        = ruleset.RuleSet        // a compiled, immutable set of rule files
	Problem        = ruleset.Problem        // one problem found in a rule file
	LoadError      = ruleset.LoadError      // the problems that stopped a set from loading
	LoadOptions    = ruleset.LoadOptions    // options of Load
	SourceFile     = ruleset.SourceFile     // one rule file's name and content
	TestCase       = ruleset.TestCase       // one test of a rule
	ExpectDecision = ruleset.ExpectDecision // what a test expects
	HistoryStep    = ruleset.HistoryStep    // a transaction a test observes first
	TestResult     = ruleset.TestResult     // the result of one rule test
	RefValue       = ruleset.RefValue       // the value one input name had for a rule
	RuleTrace      = ruleset.RuleTrace      // one rule with the values it saw
	Retraction     = ruleset.Retraction     // what undoes an observed transaction (Engine.Retract)
)

// Retraction kinds (Retraction.Kind, a counter's retract key).
const (
	RetractVoid     = ruleset.RetractVoid
	RetractReversal = ruleset.RetractReversal
	RetractRefund   = ruleset.RetractRefund
)

// Types of the engine's state (package state).
type (
	ListFlags  = state.ListFlags  // the lists.* flags of a transaction
	Lists      = state.Lists      // the deny, allow and other lists
	ListEntry  = state.ListEntry  // one value on a list
	AuditEntry = state.AuditEntry // one change of the lists
	// ListsOptions configure lists in Badger (a cluster's Log).
	ListsOptions = state.ListsOptions
)

// Transaction types (txn.type).
const (
	TxnPurchase = ruleset.TxnPurchase
	TxnPreauth  = ruleset.TxnPreauth
	TxnVoid     = ruleset.TxnVoid
	TxnRefund   = ruleset.TxnRefund
	TxnBalance  = ruleset.TxnBalance
	TxnReversal = ruleset.TxnReversal
)

// MaxCounters bounds the counters a rule set declares.
const MaxCounters = ruleset.MaxCounters

// Actions, from weakest to strongest, and modes of a rule.
const (
	ActionAllow   = ruleset.ActionAllow
	ActionAlert   = ruleset.ActionAlert
	ActionReview  = ruleset.ActionReview
	ActionDecline = ruleset.ActionDecline
	ModeEnforce   = ruleset.ModeEnforce
	ModeShadow    = ruleset.ModeShadow
)

// List kinds and the two lists the lists.* flags read.
const (
	KindBIN      = state.KindBIN
	KindCard     = state.KindCard
	KindTerminal = state.KindTerminal
	KindMerchant = state.KindMerchant
	KindCountry  = state.KindCountry
	ListDeny     = state.ListDeny
	ListAllow    = state.ListAllow
)

// Counter measures and dimensions, and the bounds of the counter store.
const (
	MeasureCount         = state.MeasureCount
	MeasureSum           = state.MeasureSum
	MeasureDistinctCards = state.MeasureDistinctCards
	DimCard              = state.DimCard
	DimTerminal          = state.DimTerminal
	DimMerchant          = state.DimMerchant
	DimDevice            = state.DimDevice
	DimMerchantGroup     = state.DimMerchantGroup
	DimBIN               = state.DimBIN
	DimRegion            = state.DimRegion
	DimAcquirer          = state.DimAcquirer
	DefaultMaxSeries     = state.DefaultMaxSeries
	DefaultMaxDistinct   = state.DefaultMaxDistinct
	DefaultMaxBytes      = state.DefaultMaxBytes
)

// KeyPrefix is the prefix of every key the risk engine writes in Badger.
const KeyPrefix = state.KeyPrefix

// DefaultTestTime is the time of a rule test's transaction when it gives none.
var DefaultTestTime = ruleset.DefaultTestTime

// ErrEmpty is wrapped by the error of a rule set without a rule (RuleSet.EmptyError).
var ErrEmpty = ruleset.ErrEmpty

// Load reads and compiles the rule files of dir (see ruleset.Load).
func Load(dir string, opts LoadOptions) (*RuleSet, error) { return ruleset.Load(dir, opts) }

// LoadFS reads and compiles the rule files at the root of fsys, naming them
// with label (see ruleset.LoadFS).
func LoadFS(fsys fs.FS, label string, opts LoadOptions) (*RuleSet, error) {
	return ruleset.LoadFS(fsys, label, opts)
}

// Compile compiles rule files already read (see ruleset.Compile).
func Compile(files []SourceFile, opts LoadOptions) (*RuleSet, error) {
	return ruleset.Compile(files, opts)
}

// ReadDir reads the rule files of dir (see ruleset.ReadDir).
func ReadDir(dir string) ([]SourceFile, error) { return ruleset.ReadDir(dir) }

// ReadFS reads the rule files at the root of fsys (see ruleset.ReadFS).
func ReadFS(fsys fs.FS, label string) ([]SourceFile, error) { return ruleset.ReadFS(fsys, label) }

// Version is the content hash of files (see ruleset.Version).
func Version(files []SourceFile) string { return ruleset.Version(files) }

// TxnTypeOf derives txn.type from the MTI and processing code (see ruleset.TxnTypeOf).
func TxnTypeOf(mti, procCode string) string { return ruleset.TxnTypeOf(mti, procCode) }

// UnavailableCode reports whether rc means the issuer could not be reached
// (see ruleset.UnavailableCode).
func UnavailableCode(rc string) bool { return ruleset.UnavailableCode(rc) }

// OutcomeOf is the Outcome of a transaction the rules decided d about and that
// got responseCode (see ruleset.OutcomeOf).
func OutcomeOf(d *Decision, responseCode string) Outcome { return ruleset.OutcomeOf(d, responseCode) }

// GeoDistance is the great-circle distance in metres (expr: geo_distance).
func GeoDistance(lat1, lon1, lat2, lon2 float64) float64 {
	return ruleset.GeoDistance(lat1, lon1, lat2, lon2)
}

// HourBetween is expr's hour_between.
func HourBetween(h, from, to int) bool { return ruleset.HourBetween(h, from, to) }

// TimeBetween is expr's time_between.
func TimeBetween(t, from, to string) bool { return ruleset.TimeBetween(t, from, to) }

// JustUnder is expr's just_under.
func JustUnder(amount, limit, pct int) bool { return ruleset.JustUnder(amount, limit, pct) }

// RoundAmount is expr's round_amount.
func RoundAmount(amount, unit int) bool { return ruleset.RoundAmount(amount, unit) }

// NewLists loads the lists from db; a nil db gives in-memory lists (see state.NewLists).
func NewLists(db *badger.DB) (*Lists, error) { return state.NewLists(db) }

// ListsOf returns read-only in-memory lists holding entries (see state.ListsOf).
func ListsOf(entries []ListEntry) *Lists { return state.ListsOf(entries) }

// OpenLists loads the lists from db with options: a cluster's Log shares them with
// the other nodes (see state.OpenLists).
func OpenLists(db *badger.DB, opts ListsOptions) (*Lists, error) { return state.OpenLists(db, opts) }

// ErrListsConflict is returned when a list change conflicted twice with changes on
// other nodes of the cluster (see state.ErrListsConflict).
var ErrListsConflict = state.ErrListsConflict
