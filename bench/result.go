package bench

import "time"

// Result is everything one bench run measured, as written to the JSON result file and
// rendered in the HTML report.
type Result struct {
	Started  time.Time `json:"started"`
	Host     string    `json:"host"` // e.g. "linux/amd64, 2 CPUs"
	Version  string    `json:"version"`
	Scenario string    `json:"scenario"` // name of the scenario, e.g. "standard"
	Settings Settings  `json:"settings"`

	// Switch is the closed loop at maximum throughput against the switch.
	Switch *Phase `json:"switch"`
	// Paced is the open loop at Settings.Rate against the switch (nil when not run).
	Paced *Phase `json:"paced,omitempty"`
	// Relay is the same closed loop through a plain framing relay (the baseline).
	Relay *Phase `json:"relay"`
	// RelayPaced is the open loop at Settings.Rate through the relay: the same
	// schedule, harness and issuer simulator with a process that only frames and
	// forwards in the switch's place, the latency floor of the machine and the load
	// (nil when not run). RelayPacedCPU is what the relay (in the Switch fields), the
	// simulator and the harness used over it.
	RelayPaced    *Phase      `json:"relay_paced,omitempty"`
	RelayPacedCPU *ProcessCPU `json:"relay_paced_cpu,omitempty"`

	// SwitchCPUPerAuthUS is the switch process's CPU time (user + system, from its
	// rusage) over the measured window of Switch, per authorization answered.
	SwitchCPUPerAuthUS float64 `json:"switch_cpu_us_per_auth"`
	// SimCPUPerAuthUS and HarnessCPUPerAuthUS are the same for the issuer simulator and
	// the load generator, the switch's neighbours on the machine.
	SimCPUPerAuthUS     float64 `json:"issuer_sim_cpu_us_per_auth,omitempty"`
	HarnessCPUPerAuthUS float64 `json:"harness_cpu_us_per_auth,omitempty"`
	// Ratio is Switch.TPS / Relay.TPS.
	Ratio float64 `json:"ratio_to_relay"`

	// Scenarios are the fraud scenarios and the legitimate traffic with their ground
	// truth; empty when the run had no labelled traffic.
	Scenarios []Scenario `json:"scenarios,omitempty"`

	// Faults is the outcome of a fault run (`bench --faults`, scenario "faults"): the
	// figures under issuer faults, an outage and a kill, and the reconciliation of the
	// terminals', the issuer's and the switch's accounts. Nil for other runs.
	Faults *FaultResult `json:"faults,omitempty"`

	// Targets are the goals the run is judged against, with whether each was met.
	Targets []Target `json:"targets,omitempty"`

	// Stages are the switch's stage times over Paced; Curve the latency-versus-rate
	// curve; Settle how the open loops started; Cards the distinct-cards run
	// (latency.go).
	Stages []StageQuantiles `json:"stages,omitempty"`
	// PacedCPU is what the switch and its neighbours used over Paced's measured
	// window: at an ordinary rate the three processes share the machine's cores, and
	// a transaction's wait for one of them is where its tail is made.
	PacedCPU *ProcessCPU `json:"paced_cpu,omitempty"`
	// PacedStore is what Badger did over Paced, second by second beside its
	// latency (storewatch.go).
	PacedStore *StoreActivity `json:"paced_store,omitempty"`
	Curve      []CurvePoint   `json:"curve,omitempty"`
	Settle     *SettleInfo    `json:"settle,omitempty"`
	Cards      *CardsResult   `json:"cards,omitempty"`
}

// ProcessCPU is the CPU time (user + system) of the switch, the issuer simulator and
// the harness over a measured window: in cores (CPU seconds a second) and per
// authorization answered.
type ProcessCPU struct {
	SwitchCores  float64 `json:"switch_cores"`
	SimCores     float64 `json:"issuer_sim_cores"`
	HarnessCores float64 `json:"harness_cores"`
	SwitchUS     float64 `json:"switch_us_per_auth"`
	SimUS        float64 `json:"issuer_sim_us_per_auth"`
	HarnessUS    float64 `json:"harness_us_per_auth"`
}

// Settings are the knobs of the run.
type Settings struct {
	Terminals int           `json:"terminals"`
	Conns     int           `json:"conns"`
	Depth     int           `json:"depth"`
	Duration  time.Duration `json:"duration_ns"`
	Warmup    time.Duration `json:"warmup_ns"`
	Rate      float64       `json:"rate"`
	// IssuerLatency and IssuerLatencyP99 are the issuer simulator's answer times: fixed,
	// or log-normal with this median and 99th percentile (zero: answers at once).
	IssuerLatency    time.Duration `json:"issuer_latency_ns,omitempty"`
	IssuerLatencyP99 time.Duration `json:"issuer_latency_p99_ns,omitempty"`
	// Fresh: the open loops ran on the switch as started, before the closed loop.
	Fresh bool `json:"fresh,omitempty"`
	// Cards is the distinct-cards run's number of cards (0: none).
	Cards int `json:"cards,omitempty"`
	// RelayBurn is the CPU time the relay spent on each request (bench --relay-burn).
	RelayBurn time.Duration `json:"relay_burn_ns,omitempty"`
	// RelayJournal: the relay made two durable writes a transaction (bench
	// --relay-journal).
	RelayJournal bool `json:"relay_journal,omitempty"`
	// RelayJournalWindow is that journal's group commit window.
	RelayJournalWindow time.Duration `json:"relay_journal_window_ns,omitempty"`
	// JournalWindow and JournalWindowCPU are the switch's journal.window and
	// journal.window_cpu in the run (bench --journal-window, --journal-window-cpu).
	JournalWindow    time.Duration `json:"journal_window_ns"`
	JournalWindowCPU float64       `json:"journal_window_cpu"`
}

// Phase is one load run against one target.
type Phase struct {
	Name   string  `json:"name"`
	TPS    float64 `json:"tps"`
	Count  int64   `json:"count"`  // answers in the measured window
	Errors int64   `json:"errors"` // requests never answered
	// Failed counts the answers in the window that were failures, 91 or 96, not
	// authorizations: in Codes, not in Count, TPS or Latency.
	Failed int64 `json:"failed"`
	// Malformed counts the answers without a response code (DE 39) over the whole
	// run (LoadResult.Malformed): in no other figure.
	Malformed int64            `json:"malformed,omitempty"`
	Elapsed   time.Duration    `json:"elapsed_ns"`
	Latency   Quantiles        `json:"latency_us"`
	Codes     map[string]int64 `json:"response_codes"`
	Timeline  []Point          `json:"timeline"`  // one point per second of the window
	Buckets   []Bucket         `json:"histogram"` // latency distribution
}

// Quantiles of a latency distribution, in microseconds.
type Quantiles struct {
	P50  int64 `json:"p50"`
	P90  int64 `json:"p90"`
	P99  int64 `json:"p99"`
	P999 int64 `json:"p999"`
	Max  int64 `json:"max"`
}

// Point is one second of a run.
type Point struct {
	Second int     `json:"t"` // seconds since the window started
	TPS    float64 `json:"tps"`
	P50US  int64   `json:"p50_us"`
	P99US  int64   `json:"p99_us"`
	// StoreMB is what Badger's compactions wrote in this second, and StoreBusy
	// whether it compacted in it (the open loop at Rate only).
	StoreMB   float64 `json:"store_mb,omitempty"`
	StoreBusy bool    `json:"store_busy,omitempty"`
}

// Bucket counts the answers whose latency was at most UpperUS (and above the previous
// bucket's bound).
type Bucket struct {
	UpperUS int64 `json:"upper_us"`
	Count   int64 `json:"count"`
}

// Scenario is the outcome of one label of generated traffic: a fraud scenario, or
// "legitimate".
type Scenario struct {
	Label    string `json:"label"`
	Fraud    bool   `json:"fraud"`
	Sent     int64  `json:"sent"`
	Declined int64  `json:"declined"`
	// Rate is Declined/Sent: the catch rate of a fraud scenario, the false-positive
	// rate of legitimate traffic.
	Rate float64 `json:"rate"`
	// ByReason counts the declines by the reason the switch gave (DE 48 RS, or the
	// response code when there was none).
	ByReason map[string]int64 `json:"by_reason"`
}

// Target is one goal of the run.
type Target struct {
	Name     string  `json:"name"`
	Goal     string  `json:"goal"` // e.g. ">= 15000/s"
	Measured float64 `json:"measured"`
	Unit     string  `json:"unit"`
	Met      bool    `json:"met"`
	// NotJudged, when set, says why the run cannot tell whether the goal is met (too
	// few attempts of a scenario); Met is then false and the target is not counted.
	NotJudged string `json:"not_judged,omitempty"`
}

// minJudged is the fewest attempts of a fraud scenario whose catch rate the run
// judges. The paced card-testing patterns are declined once their merchant has seen
// a few distinct probe cards (the slow one: 5 within an hour, one every 8 s), so their
// first attempts pass by design; a run of a few probes says nothing about the rules.
const minJudged = 20
