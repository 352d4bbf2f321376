package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/switchyard/switchyard/switch/api"
	"github.com/switchyard/switchyard/switch/cluster/cjournal"
	"github.com/switchyard/switchyard/switch/journal"
)

// The import of a stopped single switch's journal into the cluster (switchyard cluster
// import, docs/cluster.md "From a single switch to a cluster"): the admin API hands
// the node what the tool read from the single switch's data directory, and the node
// publishes it into the JOURNAL stream as node 0's (cjournal.Import), whence every
// node's applier takes it.

// importFuncs are the admin API's import routes (nil alone: the API answers 404).
func (c *clusterNode) importFuncs() (state func(context.Context) (any, error), imp func(context.Context, api.JournalImport) (any, error)) {
	if c == nil {
		return nil, nil
	}
	errNotOpen := api.WithStatus(http.StatusServiceUnavailable, errors.New("the cluster journal is not open yet"))
	state = func(ctx context.Context) (any, error) {
		if c.journal == nil {
			return nil, errNotOpen
		}
		st, err := c.journal.ImportState(ctx)
		if err != nil {
			return nil, api.WithStatus(http.StatusServiceUnavailable, err)
		}
		return st, nil
	}
	imp = func(ctx context.Context, body api.JournalImport) (any, error) {
		if c.journal == nil {
			return nil, errNotOpen
		}
		closes := make([]cjournal.BatchClose, len(body.Closes))
		for i, bc := range body.Closes {
			closes[i] = cjournal.BatchClose{TID: bc.TID, At: bc.At}
		}
		recs := make([]*journal.Record, len(body.Records))
		for i, b := range body.Records {
			recs[i] = new(journal.Record)
			if err := recs[i].UnmarshalBinary(b); err != nil {
				return nil, api.WithStatus(http.StatusBadRequest, fmt.Errorf("record %d of %d: %w", i+1, len(body.Records), err))
			}
		}
		res, err := c.journal.Import(ctx, body.Source, body.After, closes, recs)
		switch {
		case errors.Is(err, cjournal.ErrImportRefused):
			return nil, api.WithStatus(http.StatusBadRequest, err)
		case errors.Is(err, cjournal.ErrImportConflict):
			return nil, api.WithStatus(http.StatusConflict, err)
		case errors.Is(err, cjournal.ErrImportBehind), errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
			// Behind, or the request gone (the tool stopped, the node stopping).
			return nil, api.WithStatus(http.StatusServiceUnavailable, err)
		case errors.Is(err, journal.ErrUnavailable):
			return nil, api.WithStatus(http.StatusServiceUnavailable, err)
		case err != nil:
			return nil, err
		}
		c.log.Info().Int("records", res.Records).Int("closes", res.Closes).Int("messages", res.Messages).Str("last_rrn", res.LastRRN).
			Msg("single switch's journal: imported into the cluster's stream")
		return res, nil
	}
	return state, imp
}
