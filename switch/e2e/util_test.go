package e2e

import (
	"strings"

	"github.com/moov-io/iso8583"

	"github.com/switchyard/switchyard/switch/message"
)

func newMsg() *iso8583.Message { return iso8583.NewMessage(message.SpecASCII) }

func stringsIndex(s, sub string) int { return strings.Index(s, sub) }
