package cup

import (
	"context"
	"fmt"

	"github.com/switchyard/switchyard/switch/frontend"
	"github.com/switchyard/switchyard/switch/message"
)

// TestMode is what a listener does with the card messages of a terminal whose header
// says it is in test status (terminal status digit 1, Header.Status).
type TestMode string

// The test modes of a listener (listeners[].cup.test_mode).
const (
	// TestReject (the default) refuses them RCTestMode (58) terminal-test-mode,
	// MAC'd, journaled as a refusal, nothing forwarded: a terminal left in test
	// status never trades for real, and its merchant sees every sale declined.
	TestReject TestMode = "reject"
	// TestAnswer has the switch answer them itself, 00, with no issuer, no journal
	// record, nothing settled: for installing and testing terminals against a
	// listener that serves only such terminals.
	TestAnswer TestMode = "answer"
)

// ParseTestMode checks a configured test mode ("" is reject).
func ParseTestMode(s string) (TestMode, error) {
	switch TestMode(s) {
	case "", TestReject:
		return TestReject, nil
	case TestAnswer:
		return TestAnswer, nil
	}
	return "", fmt.Errorf("unknown cup test mode %q (want %q or %q)", s, TestReject, TestAnswer)
}

// RCTestMode is the response code of a test-status message refused (TestReject):
// 58, transaction not permitted to the terminal (UnionPay 交易不允许在该终端进行).
const RCTestMode = message.RCNotPermittedTerm

// ReasonTestMode is the journal's reason for a test-status message refused, and the
// log's.
const ReasonTestMode = "terminal-test-mode"

// StatusTest is the header's terminal status digit of a terminal in test status.
const StatusTest = 1

// testTraffic handles a card message (sale, pre-authorization and its void,
// completion and its void, void, refund, balance, settlement, batch upload) whose
// header says the terminal is in test status, after its MAC verified: refused
// (TestReject) or answered 00 by the switch (TestAnswer), never forwarded. handled
// is false for a message of a terminal in normal status, and for a reversal
// (0400), which goes on to the pipeline in either mode: it moves no new money, and
// refusing it would leave standing a real approval taken back by a terminal put in
// test status since.
func (a *Adapter) testTraffic(ctx context.Context, c *frontend.Conn, f, ans *Frame, sit Situation, macf MACFunc) (resp frontend.Response, handled bool, err error) {
	if f.Header.Status() != StatusTest || f.MTI() == "0400" {
		return frontend.Response{}, false, nil
	}
	if a.cfg.TestMode == TestAnswer {
		if a.cfg.TestTraffic != nil {
			a.cfg.TestTraffic("answered")
		}
		if a.cfg.NextRRN != nil {
			if rrn, err := a.cfg.NextRRN(); err == nil {
				ans.Set(37, rrn)
			}
		}
		if f.MTI() == "0500" {
			if f48, ok := settlementAnswer(f.Str(48), message.RCApproved); ok {
				ans.Set(48, f48)
			}
		}
		resp, err := a.reply(ans, sit, message.RCApproved, macf, "terminal in test status (header): answered by the switch (test_mode answer), nothing forwarded or journaled")
		return resp, true, err
	}
	if a.cfg.TestTraffic != nil {
		a.cfg.TestTraffic("rejected")
	}
	resp, err = a.refused(ctx, c, f, ans, sit, RCTestMode, macf,
		f.MTI()+": terminal in test status (header): refused, nothing forwarded (test_mode reject)", ReasonTestMode)
	return resp, true, err
}
