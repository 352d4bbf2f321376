package pipeline

import (
	"context"
	"net/netip"
	"time"

	"github.com/switchyard/switchyard/switch/frontend"
	"github.com/switchyard/switchyard/switch/message"
	"github.com/switchyard/switchyard/switch/metrics"
	"github.com/switchyard/switchyard/switch/registry"
)

// Terminals knows the merchants and terminals and checks what a request says about its
// terminal: status, merchant, bound identity, location, network, application version and
// SoftPOS device integrity.
type Terminals interface {
	Check(req registry.CheckRequest) registry.CheckResult
	Terminal(id string) (*registry.Terminal, bool)
	Seen(id string, addr netip.Addr, loc registry.GeoPoint, now time.Time)
}

// checkRequest builds the registry's view of a request. A malformed GL, AT or IF value
// is a format error (the second result names it).
func checkRequest(r *message.Request, c *frontend.Conn, macVerified bool, now time.Time) (registry.CheckRequest, string) {
	tl := &r.TLV
	cr := registry.CheckRequest{
		TerminalID: r.TID, MerchantID: r.MID, SourceIP: c.Remote.Addr(),
		DeviceID: tl.Device, SIM: tl.SIM, IMEI: tl.IMEI, Cell: tl.Cell, AppVersion: tl.AppVersion,
		MACVerified: macVerified, Now: now,
	}
	if tl.Has&message.HasGeo != 0 {
		g, err := message.ParseGeo(tl.Geo)
		if err != nil {
			return cr, "GL"
		}
		cr.Location = registry.GeoPoint{Lat: g.Lat, Lon: g.Lon, Present: true}
	}
	if tl.Has&message.HasAttestation != 0 {
		a, err := message.ParseAttestation(tl.Attestation)
		if err != nil {
			return cr, "AT"
		}
		cr.AttestationPresent, cr.AttestationTime, cr.AttestationOK = true, time.Unix(a.Unix, 0), a.OK
	}
	if tl.Has&message.HasIntegrity != 0 {
		cr.Findings = message.ParseFindings(tl.Integrity)
	}
	return cr, ""
}

// checkTerminal runs the binding and integrity checks; it returns a response when the
// request is declined.
func (p *Pipeline) checkTerminal(ctx context.Context, t *txn, macVerified bool) (*registry.CheckResult, *frontend.Response, error) {
	if p.terminals == nil {
		return nil, nil, nil
	}
	start := p.now()
	cr, bad := checkRequest(t.req, t.conn, macVerified, start)
	if bad != "" {
		resp, err := p.decline(ctx, t, message.RCFormatError, "switch", "de48-"+bad+"-malformed")
		return nil, &resp, err
	}
	res := p.terminals.Check(cr)
	took := p.now().Sub(start)
	t.rec.Timings.Checks += took.Microseconds()
	t.stages.add(metrics.StageChecks, took)
	if res.Decline {
		resp, err := p.decline(ctx, t, res.ResponseCode, "binding", string(res.Reason))
		return &res, &resp, err
	}
	return &res, nil, nil
}
