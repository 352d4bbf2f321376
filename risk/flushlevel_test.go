package risk

import (
	"errors"
	"fmt"
	"testing"

	"github.com/dgraph-io/badger/v4"
	"github.com/rs/zerolog"
)

// TestFlushFailureLevel: a periodic flush that Badger refused for a moment (writes
// blocked while a DropPrefix flushes, as the start's clean-up of stored text does)
// is logged at Info, not Error; any other failure at Error. Both keep the changes
// for the next flush (state.TestFlushFailureKeepsChanges).
func TestFlushFailureLevel(t *testing.T) {
	for _, c := range []struct {
		err  error
		want zerolog.Level
	}{
		{fmt.Errorf("write velocity counters to Badger: %w", badger.ErrBlockedWrites), zerolog.InfoLevel},
		{fmt.Errorf("write velocity counters to Badger: %w", badger.ErrNoRewrite), zerolog.ErrorLevel},
		{errors.New("no space left on device"), zerolog.ErrorLevel},
	} {
		if got := flushFailureLevel(c.err); got != c.want {
			t.Errorf("%v: logged at %v, want %v", c.err, got, c.want)
		}
	}
}
