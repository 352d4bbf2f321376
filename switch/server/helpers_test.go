package server

import (
	"github.com/moov-io/iso8583"

	"github.com/switchyard/switchyard/switch/message"
)

func newMsg() *iso8583.Message { return iso8583.NewMessage(message.SpecASCII) }

// testCard returns the i-th distinct good demo card, so that tests do not trip the
// per-card velocity rules.
func testCard(i int) string { return message.DemoCard(i) }
