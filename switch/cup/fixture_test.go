package cup

import (
	"bytes"
	"time"

	"github.com/rs/zerolog"

	"github.com/switchyard/switchyard/switch/frontend"
	"github.com/switchyard/switchyard/switch/message"
)

// macFixture is an adapter over fakes, its clock at a fixed time, with a terminal
// that shares its MAC key with the fake HSM: for the tests that build a frame,
// change its bytes, MAC it and hand it to the adapter.
type macFixture struct {
	a    *Adapter
	p    *fakePipeline
	refs *fakeRefusals
	logs *bytes.Buffer // the adapter's log
	term *Terminal
	conn *frontend.Conn
}

// newMACFixture returns a macFixture whose clock reads now.
func newMACFixture(now time.Time) *macFixture {
	mak := []byte("0123456789ABCDEF")
	fx := &macFixture{p: &fakePipeline{}, refs: &fakeRefusals{}, logs: &bytes.Buffer{}}
	fx.a = NewAdapter(Config{HSM: &fakeHSM{mak: mak}, Terminals: fakeTerminals{}, Refusals: fx.refs, Logger: zerolog.New(fx.logs),
		Now: func() time.Time { return now }}, fx.p)
	fx.term = &Terminal{TID: "T0000001", MID: "000000000000001", mak: mak, batch: "000007",
		TPDU: TPDU{0x60, 0, 3, 0, 0}, Header: Header{0x60, 0x31, 0, 0x31, 0, 0}}
	fx.conn = &frontend.Conn{Listener: "cup", Dialect: message.DialectCUP}
	return fx
}
