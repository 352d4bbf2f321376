package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/switchyard/switchyard/internal/kvjson"
)

// IncidentStatus is the handling state of an incident.
type IncidentStatus string

// The incident states: open -> acknowledged -> resolved (open -> resolved is allowed).
const (
	IncidentOpen         IncidentStatus = "open"
	IncidentAcknowledged IncidentStatus = "acknowledged"
	IncidentResolved     IncidentStatus = "resolved"
)

// DeviceData is what the terminal sent with a request that violated its binding or
// integrity: identities, location, application version, SoftPOS data. It holds no
// card data.
type DeviceData struct {
	MerchantID         string     `json:"merchant_id"` // DE 42 as sent
	SourceIP           string     `json:"source_ip,omitempty"`
	DeviceID           string     `json:"device_id,omitempty"`
	SIM                string     `json:"sim,omitempty"`
	IMEI               string     `json:"imei,omitempty"`
	Location           *GeoPoint  `json:"location,omitempty"`
	Cell               string     `json:"cell,omitempty"`
	AppVersion         string     `json:"app_version,omitempty"`
	Findings           []string   `json:"findings,omitempty"`
	AttestationPresent bool       `json:"attestation_present"`
	AttestationTime    *time.Time `json:"attestation_time,omitempty"`
	// AttestationOK is the attestation as the terminal sent it (AT verdict OK; a
	// signed token verified, TEE present), false when the incident's reason is the
	// attestation's own (attestation-device-mismatch, -stale...): the check failed.
	AttestationOK bool `json:"attestation_ok"`
	// AttestedDevice is the signed token's dev (DE 48 AJ): the device serial the
	// attestation service examined, which the checks compare with the bound one
	// ("" without a verified token). A device serial, not card data. Since 8
	// December 2026 (fifteenth release).
	AttestedDevice string `json:"attested_device,omitempty"`
	MACVerified    bool   `json:"mac_verified"`
}

// IncidentRequest names the request an incident refused, so that an analyst finds
// it in the journal: its MTI, processing code and type (purchase, refund, reversal,
// network...), its STAN (DE 11) and the RRN of its journal record ("" for a request
// the journal does not keep, a sign-on). No card data.
type IncidentRequest struct {
	MTI      string `json:"mti,omitempty"`
	ProcCode string `json:"proc_code,omitempty"`
	Type     string `json:"type,omitempty"`
	STAN     string `json:"stan,omitempty"`
	RRN      string `json:"rrn,omitempty"`
}

// Incident is a binding or device-integrity violation, with the merchant, terminal,
// device data, location and findings as they were at that moment.
type Incident struct {
	ID           string     `json:"id"`
	Seq          uint64     `json:"seq"`
	Time         time.Time  `json:"time"`
	Reason       Reason     `json:"reason"`
	ResponseCode string     `json:"response_code"`
	TerminalID   string     `json:"terminal_id"`
	MerchantID   string     `json:"merchant_id"` // the terminal's merchant
	Terminal     *Terminal  `json:"terminal,omitempty"`
	Merchant     *Merchant  `json:"merchant,omitempty"`
	Device       DeviceData `json:"device"`
	Facts        Facts      `json:"facts"`
	// Request is the request refused (since 6 December 2026; zero in older
	// incidents and in those of confirmed fraud).
	Request IncidentRequest `json:"request,omitzero"`
	// Action is what the switch did besides declining, e.g. "terminal-suspended".
	Action string `json:"action,omitempty"`
	// Case is the review case whose confirmed fraud opened the incident (reason
	// confirmed-fraud), "" for the binding checks' incidents.
	Case string `json:"case,omitempty"`
	// Node is the cluster node that saw the violation (0 on a single node).
	Node int `json:"node,omitempty"`
	// Origin names the incident uniquely before it has an ID, in a cluster: how a
	// node finds out whether a commit whose acknowledgement was lost was stored.
	Origin string `json:"origin,omitempty"`

	spilled bool // with Options.Log: it is on this node's disk, under pfxIncSpill + Origin
	stored  bool // with Options.Log: ordered, with its ID

	Status      IncidentStatus `json:"status"`
	AckBy       string         `json:"acknowledged_by,omitempty"`
	AckAt       *time.Time     `json:"acknowledged_at,omitempty"`
	AckNote     string         `json:"acknowledge_note,omitempty"`
	ResolvedBy  string         `json:"resolved_by,omitempty"`
	ResolvedAt  *time.Time     `json:"resolved_at,omitempty"`
	ResolveNote string         `json:"resolve_note,omitempty"`
}

// incidents records the binding violations Check finds, and confirmed fraud,
// as incidents. Check only queues one (incQ); a background writer stores what is
// waiting with one transaction and sync, so a burst of declines costs the hot path
// no disk wait. Handling an incident (ack, resolve) is an ordinary oplog write
// under the store's lock.
//
// In a cluster (Options.Log) incidents are shared: the writer orders each batch
// through the Log like any registry write (incidents_order.go), the sequence, and
// so the ID, is assigned then, cluster-wide, and the other nodes apply them.
type incidents struct {
	*store
	incSeq  atomic.Uint64 // last incident sequence
	incQ    chan incItem
	qmu     sync.RWMutex // guards the switch from queued to synchronous incidents
	qclosed bool
	stop    chan struct{}
	wg      sync.WaitGroup // the writer

	// With Log (incidents_order.go):
	spilled atomic.Bool         // set when an incident was written to pfxIncSpill
	onDisk  atomic.Int64        // incidents under pfxIncSpill
	unsure  bool                // the writer's last attempt's outcome is unknown (the writer's alone)
	landed  map[string]uint64   // this node's incidents ApplyRemote stored, by origin, until an attempt finds them (r.mu)
	awaited map[string]struct{} // origins of attempts whose outcome is unknown, until they are found stored (r.mu)
	// remoteHook is called for every incident another commit adds (r.mu)
	remoteHook func(*Incident)
}

// load finds the last incident sequence.
func (r *incidents) load(txn *badger.Txn) error {
	n, _, err := lastSeq(txn, pfxIncident)
	r.incSeq.Store(n)
	if err != nil {
		return err
	}
	var kept int64
	err = iterate(txn, pfxIncSpill, func(_, _ []byte) error { kept++; return nil })
	r.onDisk.Store(kept)
	r.m.waiting.WithLabelValues("disk").Set(float64(kept))
	return err
}

// start starts the background writer.
func (r *incidents) start() {
	r.wg.Add(1)
	if r.opts.Log != nil {
		r.spilled.Store(true) // read what the last run left
		r.unsure = true       // and what it sent last may yet be applied
		go r.orderWriter()
		return
	}
	go r.incidentWriter()
}

// shutdown stops queueing (later incidents are written synchronously) and waits
// until the writer has stored everything queued.
func (r *incidents) shutdown() {
	r.qmu.Lock()
	r.qclosed = true
	r.qmu.Unlock()
	close(r.stop)
	r.wg.Wait()
}

func incidentID(seq uint64) string { return "INC-" + strconv.FormatUint(seq, 10) }

type incItem struct {
	inc  *Incident
	done chan struct{} // a flush barrier when inc is nil
}

// recordIncident builds an incident from a declined request and queues it.
func (r *incidents) recordIncident(res CheckResult, req *CheckRequest) {
	now := req.Now
	if now.IsZero() {
		now = r.clock()
	}
	inc := &Incident{
		Time:         now.UTC(),
		Reason:       res.Reason,
		ResponseCode: res.ResponseCode,
		Terminal:     res.Terminal,
		Merchant:     res.Merchant,
		Facts:        res.Facts,
		Status:       IncidentOpen,
		Request: IncidentRequest{MTI: strings.Clone(req.Request.MTI), ProcCode: strings.Clone(req.Request.ProcCode),
			Type: strings.Clone(req.Request.Type), STAN: strings.Clone(req.Request.STAN), RRN: strings.Clone(req.Request.RRN)},
		Device: DeviceData{
			MerchantID:         strings.Clone(req.MerchantID),
			DeviceID:           strings.Clone(req.DeviceID),
			SIM:                strings.Clone(req.SIM),
			IMEI:               strings.Clone(req.IMEI),
			Cell:               strings.Clone(req.Cell),
			AppVersion:         strings.Clone(req.AppVersion),
			AttestationPresent: req.AttestationPresent,
			AttestationOK:      req.AttestationOK && !attestationReason(res.Reason),
			AttestedDevice:     strings.Clone(req.AttestedDevice),
			MACVerified:        req.MACVerified,
		},
	}
	if req.SourceIP.IsValid() {
		inc.Device.SourceIP = req.SourceIP.String()
	}
	if req.Location.valid() {
		// Only a point: JSON has no NaN, and an incident that does not encode
		// took the others of its batch with it (until 6 December 2026).
		l := req.Location
		inc.Device.Location = &l
	}
	if len(req.Findings) > 0 {
		inc.Device.Findings = make([]string, len(req.Findings))
		for i, f := range req.Findings {
			inc.Device.Findings[i] = strings.Clone(f)
		}
	}
	inc.Facts.Findings = inc.Device.Findings
	inc.Facts.AppVersion = inc.Device.AppVersion
	if req.AttestationPresent {
		at := req.AttestationTime.UTC()
		inc.Device.AttestationTime = &at
	}
	if res.Terminal != nil {
		inc.TerminalID, inc.MerchantID = res.Terminal.ID, res.Terminal.MerchantID
	} else {
		inc.TerminalID = strings.Clone(req.TerminalID)
	}
	if res.Reason == ReasonDeviceCompromised {
		inc.Action = "terminal-suspended"
	}
	inc.Node = r.opts.Node
	r.m.incidents.WithLabelValues(string(inc.Reason)).Inc()
	if r.opts.Log != nil {
		inc.Origin = r.newOrigin()
	} else {
		inc.Seq = r.incSeq.Add(1)
		inc.ID = incidentID(inc.Seq)
		r.logIncident(inc)
	}

	r.qmu.RLock()
	if !r.qclosed {
		select {
		case r.incQ <- incItem{inc: inc}:
			r.qmu.RUnlock()
			return
		default: // queue full: write it ourselves
		}
	}
	r.qmu.RUnlock()
	if r.opts.Log != nil {
		// Never wait for the cluster here: keep it on this node's disk until the
		// writer can order it.
		r.spill(inc)
		return
	}
	if err := r.writeIncident(inc); err != nil {
		r.log.Error().Err(err).Str("incident", inc.ID).Msg("registry: incident not stored")
	}
}

// OnRemoteIncident sets fn to be called for every new incident that reaches this
// node through ApplyRemote (another node's, in a cluster): the server has the
// merchant of a confirmed fraud rated again, as the node that opened it does.
// fn runs under the registry's lock and must not block.
func (r *incidents) OnRemoteIncident(fn func(*Incident)) {
	r.mu.Lock()
	r.remoteHook = fn
	r.mu.Unlock()
}

// logIncident logs an incident once it has its ID.
func (r *incidents) logIncident(inc *Incident) {
	if inc.Reason == ReasonConfirmedFraud {
		r.log.Warn().Str("incident", inc.ID).Str("reason", string(inc.Reason)).Str("case", inc.Case).Str("terminal", inc.TerminalID).
			Str("merchant", inc.MerchantID).Msg("fraud confirmed at merchant")
		return
	}
	r.log.Warn().Str("incident", inc.ID).Str("reason", string(inc.Reason)).Str("terminal", inc.TerminalID).
		Str("merchant", inc.MerchantID).Str("source_ip", inc.Device.SourceIP).Float64("distance_m", inc.Facts.DistanceM).
		Strs("findings", inc.Device.Findings).Msg("binding violation")
}

func (r *incidents) writeIncident(inc *Incident) error {
	return r.writeIncidents([]*Incident{inc})
}

// writeIncidents stores incidents with one transaction and one sync.
func (r *incidents) writeIncidents(incs []*Incident) error {
	var err error
	if r.opts.Persist != nil {
		kvs := make([][2][]byte, 0, len(incs))
		for _, inc := range incs {
			b, jerr := json.Marshal(inc)
			if jerr != nil {
				err = fmt.Errorf("encode incident %s: %w", inc.ID, jerr)
				break
			}
			kvs = append(kvs, [2][]byte{seqKey(pfxIncident, inc.Seq), b})
			if inc.Case != "" {
				kvs = append(kvs, [2][]byte{caseIncidentKey(inc.Case), []byte(inc.ID)})
			}
		}
		if err == nil {
			err = r.opts.Persist(context.Background(), kvs)
		}
	} else {
		err = r.db.Update(func(txn *badger.Txn) error {
			for _, inc := range incs {
				if err := putJSON(txn, seqKey(pfxIncident, inc.Seq), inc); err != nil {
					return err
				}
				if inc.Case != "" {
					if err := txn.Set(caseIncidentKey(inc.Case), []byte(inc.ID)); err != nil {
						return err
					}
				}
			}
			return nil
		})
		if err == nil {
			err = r.db.Sync()
		}
	}
	if err != nil {
		first := incs[0]
		return fmt.Errorf("registry: store %d incident(s) from %s (%s, terminal %s): %w", len(incs), first.ID, first.Reason, first.TerminalID, err)
	}
	return nil
}

// incidentBatch is the most incidents the writer stores with one sync.
const incidentBatch = 256

// incidentWriter stores queued incidents: whatever is waiting is written together.
func (r *incidents) incidentWriter() {
	defer r.wg.Done()
	var batch []incItem
	var incs []*Incident
	handle := func() {
		incs = incs[:0]
		for _, it := range batch {
			if it.inc != nil {
				incs = append(incs, it.inc)
			}
		}
		if len(incs) > 0 {
			if err := r.writeIncidents(incs); err != nil {
				r.log.Error().Err(err).Msg("registry: incidents not stored")
			}
		}
		for _, it := range batch {
			if it.done != nil {
				close(it.done)
			}
		}
		clear(batch)
		batch = batch[:0]
	}
	gather := func() {
		for len(batch) < incidentBatch {
			select {
			case it := <-r.incQ:
				batch = append(batch, it)
			default:
				return
			}
		}
	}
	for {
		select {
		case it := <-r.incQ:
			batch = append(batch, it)
			gather()
			handle()
		case <-r.stop:
			for { // drain: nothing is queued after qclosed is set
				gather()
				if len(batch) == 0 {
					return
				}
				handle()
			}
		}
	}
}

// FlushIncidents waits until every incident queued so far is stored (with
// Options.Log: until the writer has tried to order them once).
func (r *incidents) FlushIncidents() {
	if done := r.barrier(true); done != nil {
		<-done
	}
}

// readFlushWait bounds, in a cluster, how long a read waits for the incidents
// queued before it: without a quorum they cannot be ordered, and a read must not
// hang (they are listed once they are ordered).
const readFlushWait = 500 * time.Millisecond

// flushForRead is FlushIncidents before a read; with Options.Log it waits at most
// readFlushWait.
func (r *incidents) flushForRead() {
	done := r.barrier(r.opts.Log == nil)
	if done == nil {
		return
	}
	if r.opts.Log == nil {
		<-done
		return
	}
	t := time.NewTimer(readFlushWait)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
	}
}

// barrier queues a flush barrier and returns the channel the writer closes once
// it has handled what was queued before it; nil after Close, and when the queue
// is full unless block.
func (r *incidents) barrier(block bool) chan struct{} {
	done := make(chan struct{})
	r.qmu.RLock()
	defer r.qmu.RUnlock()
	if r.qclosed {
		return nil
	}
	if block {
		r.incQ <- incItem{done: done}
		return done
	}
	select { // in a cluster a full queue means the writer is waiting for the quorum
	case r.incQ <- incItem{done: done}:
		return done
	default:
		return nil
	}
}

// IncidentFilter selects incidents; empty fields match everything.
type IncidentFilter struct {
	Status     IncidentStatus
	TerminalID string
	MerchantID string
	Reason     Reason
	Since      time.Time
	Limit      int // the newest this many; 0 means 1000
}

// Incidents returns the matching incidents, oldest first.
func (r *incidents) Incidents(f IncidentFilter) ([]*Incident, error) {
	r.flushForRead()
	return kvjson.Newest(r.db, pfxIncident, f.Limit, "registry: read incident", func(inc *Incident) bool {
		return (f.Since.IsZero() || !inc.Time.Before(f.Since)) && (f.Status == "" || inc.Status == f.Status) &&
			(f.TerminalID == "" || inc.TerminalID == f.TerminalID) && (f.MerchantID == "" || inc.MerchantID == f.MerchantID) &&
			(f.Reason == "" || inc.Reason == f.Reason)
	})
}

// GetIncident returns incident id.
func (r *incidents) GetIncident(id string) (*Incident, error) {
	r.flushForRead()
	n, err := parseSeqID(id, "INC-")
	if err != nil {
		return nil, err
	}
	inc := new(Incident)
	err = r.db.View(func(txn *badger.Txn) error { return getJSON(txn, seqKey(pfxIncident, n), inc) })
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, notFoundf("incident %s does not exist", id)
	}
	if err != nil {
		return nil, fmt.Errorf("registry: read incident %s: %w", id, err)
	}
	return inc, nil
}

func canHandle(p Actor) bool {
	return p.Role == RoleOperator || p.Role == RoleAdmin
}

// AcknowledgeIncident marks open incident id as acknowledged by operator p.
func (r *incidents) AcknowledgeIncident(p Actor, id, note string) (*Incident, error) {
	return r.updateIncident(p, id, note, IncidentAcknowledged)
}

// ResolveIncident marks incident id as resolved by operator p. Resolving does not
// resume a suspended terminal: that is a separate, reviewed change.
func (r *incidents) ResolveIncident(p Actor, id, note string) (*Incident, error) {
	return r.updateIncident(p, id, note, IncidentResolved)
}

func (r *incidents) updateIncident(p Actor, id, note string, to IncidentStatus) (*Incident, error) {
	if err := noteError("incident "+id+": note", note); err != nil {
		return nil, err
	}
	note = r.maskText(p, "incident "+id, "note", note)
	return retry(r.store, func() (*Incident, error) { return r.updateIncidentOnce(p, id, note, to) })
}

func (r *incidents) updateIncidentOnce(p Actor, id, note string, to IncidentStatus) (*Incident, error) {
	if !canHandle(p) {
		return nil, forbiddenf("%s (%s) may not handle incidents: operator or admin role needed", p.Name, p.Role)
	}
	inc, err := r.GetIncident(id)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	// Re-read under the lock: another operator may have handled it meanwhile.
	err = r.db.View(func(txn *badger.Txn) error { return getJSON(txn, seqKey(pfxIncident, inc.Seq), inc) })
	if err != nil {
		return nil, fmt.Errorf("registry: read incident %s: %w", id, err)
	}
	before := inc.Status
	now := r.now()
	note = strings.TrimSpace(note)
	switch {
	case to == IncidentAcknowledged && inc.Status == IncidentOpen:
		inc.Status, inc.AckBy, inc.AckAt, inc.AckNote = to, p.Name, &now, note
	case to == IncidentResolved && inc.Status != IncidentResolved:
		inc.Status, inc.ResolvedBy, inc.ResolvedAt, inc.ResolveNote = to, p.Name, &now, note
	default:
		return nil, conflictf("incident %s is %s: cannot become %s", inc.ID, inc.Status, to)
	}
	action := "incident.ack"
	if to == IncidentResolved {
		action = "incident.resolve"
	}
	b := r.ops()
	b.add(OpEntry{Time: now, Actor: p.Name, Role: p.Role, Action: action, TargetType: "incident", Target: inc.ID, Reason: note,
		Before: rawJSON(map[string]any{"status": before}), After: rawJSON(map[string]any{"status": inc.Status})})
	if err := r.commitLocked(func(txn *wtx) error {
		if err := putJSON(txn, seqKey(pfxIncident, inc.Seq), inc); err != nil {
			return err
		}
		return b.write(txn)
	}); err != nil {
		return nil, fmt.Errorf("registry: store %s of %s: %w", action, inc.ID, err)
	}
	b.done()
	return inc, nil
}
