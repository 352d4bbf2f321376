package config

import (
	"fmt"
	"regexp"
	"time"

	"github.com/switchyard/switchyard/switch/message"
)

var (
	cupAcquirerID = regexp.MustCompile(`^[0-9]{1,11}$`)
	cupCurrency   = regexp.MustCompile(`^[0-9]{3}$`)
)

// checkCUP validates the kind and the cup section of listener l (key is its path).
func checkCUP(key string, l Listener, bad func(key, format string, args ...any)) {
	if l.Kind != "" && l.Kind != "tcp" && l.Kind != "https" {
		bad(key+".kind", "unknown listener kind %q (want tcp or https)", l.Kind)
	}
	if l.CUP == nil {
		return
	}
	if l.Dialect != string(message.DialectCUP) {
		bad(key+".cup", "is only for a listener of dialect %q, not %q", message.DialectCUP, l.Dialect)
		return
	}
	checkMAC := func(k, v string) {
		if v != "" && v != "ecb" && v != "x919" {
			bad(k, "unknown cup MAC algorithm %q (want ecb or x919)", v)
		}
	}
	checkMAC(key+".cup.mac", l.CUP.MAC)
	for tid, v := range l.CUP.MACByTerminal {
		checkMAC(fmt.Sprintf("%s.cup.mac_by_terminal.%s", key, tid), v)
	}
	if l.CUP.AcquirerID != "" && !cupAcquirerID.MatchString(l.CUP.AcquirerID) {
		bad(key+".cup.acquirer_id", "%q is not 1 to 11 digits", l.CUP.AcquirerID)
	}
	if a := l.CUP.SignInMaxAge.D(); a != 0 && (a < 10*time.Minute || a > 168*time.Hour) {
		bad(key+".cup.sign_in_max_age", "%v: want 10m to 168h (0: the default, 24h)", a)
	}
	if m := l.CUP.OfflineMaxAmount; m < -1 {
		bad(key+".cup.offline_max_amount", "%d is neither an amount in minor units nor -1 (no ceiling)", m)
	}
	for i, c := range l.CUP.Currencies {
		if !cupCurrency.MatchString(c) {
			bad(fmt.Sprintf("%s.cup.currencies[%d]", key, i), "%q is not an ISO 4217 numeric code (3 digits, e.g. 156)", c)
		}
	}
	if m := l.CUP.TestMode; m != "" && m != "reject" && m != "answer" {
		bad(key+".cup.test_mode", "unknown test mode %q (want reject or answer)", m)
	}
	if n := l.CUP.MaxSTANsPerKey; n != 0 && (n < minCUPSTANsPerKey || n > maxCUPSTANsPerKey) {
		bad(key+".cup.max_stans_per_key", "%d: want %d to %d (0: the default, 50000)", n, minCUPSTANsPerKey, maxCUPSTANsPerKey)
	}
}

// The bounds of listeners[].cup.max_stans_per_key: a session keeps its terminal's
// latest 2048 STANs whatever the value (cup's maxSTANs), and F11's 6 digits give at
// most 10^6 STANs.
const (
	minCUPSTANsPerKey = 2048
	maxCUPSTANsPerKey = 1_000_000
)
