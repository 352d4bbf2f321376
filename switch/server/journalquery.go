package server

import (
	"time"

	"github.com/switchyard/switchyard/switch/api"
	"github.com/switchyard/switchyard/switch/journal"
)

// QueryFromValues builds a journal query from named values (tid, mid, rrn, from, to,
// limit). It is api.QueryFromValues, kept here for the CLI until it moves.
func QueryFromValues(get func(string) string, now time.Time) (journal.Query, error) {
	return api.QueryFromValues(get, now)
}
