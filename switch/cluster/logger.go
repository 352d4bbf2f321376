package cluster

import (
	"fmt"
	"strings"
	"sync/atomic"

	"github.com/rs/zerolog"
)

// natsLogger bridges nats-server's Logger interface to zerolog. nats-server's
// own Fatalf exits the process; here it logs at error level and returns, since
// the server reports its failures to Start through ReadyForConnections anyway,
// and a library must not end the process.
type natsLogger struct {
	l zerolog.Logger
	// fatal is the last fatal message, which Start reports as its reason.
	fatal atomic.Pointer[string]
	// writeErr is the last "Critical write error" the server logged, nil when none
	// since JetStream (re)started: see storeWriteError.
	writeErr atomic.Pointer[string]
}

// criticalWrite is what nats-server (v2.15) logs, at error level, when a stream's,
// a consumer's or a Raft group's store fails a write ("Filestore [S-R3F-...]
// Critical write error: write .../1.blk: read-only file system"): that group
// stops on this server for good, while JetStream stays on (only "no space left on
// device" turns JetStream off). The log line is the only sign of it the server
// gives: the group is unregistered once stopped. TestClusterStoreReadOnly (e2e)
// catches a change of the wording.
const criticalWrite = "Critical write error"

func (n *natsLogger) Noticef(format string, v ...any) {
	n.l.Info().Msg(fmt.Sprintf(format, v...))
}

func (n *natsLogger) Warnf(format string, v ...any) {
	n.l.Warn().Msg(fmt.Sprintf(format, v...))
}

func (n *natsLogger) Fatalf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	n.fatal.Store(&msg)
	n.l.Error().Bool("fatal", true).Msg(msg)
}

func (n *natsLogger) Errorf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	if strings.Contains(msg, criticalWrite) {
		n.writeErr.Store(&msg)
	}
	n.l.Error().Msg(msg)
}

func (n *natsLogger) Debugf(format string, v ...any) {
	n.l.Debug().Msg(fmt.Sprintf(format, v...))
}

func (n *natsLogger) Tracef(format string, v ...any) {
	n.l.Trace().Msg(fmt.Sprintf(format, v...))
}
