package cluster

import (
	"fmt"
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
}

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
	n.l.Error().Msg(fmt.Sprintf(format, v...))
}

func (n *natsLogger) Debugf(format string, v ...any) {
	n.l.Debug().Msg(fmt.Sprintf(format, v...))
}

func (n *natsLogger) Tracef(format string, v ...any) {
	n.l.Trace().Msg(fmt.Sprintf(format, v...))
}
