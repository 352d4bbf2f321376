package dukpt

import (
	"strings"
	"testing"
)

func TestPrefixMatchesIgnoresCounter(t *testing.T) {
	for _, c := range []struct {
		ksn, prefix string
		aes, want   bool
	}{
		{"FFFF9876543210E00001", "FFFF9876543210E", false, true},
		{"FFFF9876543210F00001", "FFFF9876543210E", false, true}, // counter 0x100001
		{"ffff9876543210fff800", "FFFF9876543210E", false, true}, // counter 0x1FF800
		{"FFFF9876543210E00001", "FFFF9876543210F", false, true}, // prefix copied from a KSN past 0x100000
		{"FFFF9876543210C00001", "FFFF9876543210E", false, false},
		{"FFFF9876543210F00001", "FFFF", false, true},
		{"EEEE9876543210F00001", "FFFF", false, false},
		{"1234567890123456FFFF0000", "1234567890123456", true, true},
		{"1234567890123457FFFF0000", "1234567890123456", true, false},
		{"1234567890123456FFFF0000", "12345678901234", true, true},
	} {
		if got := PrefixMatches(c.ksn, c.prefix, c.aes); got != c.want {
			t.Errorf("PrefixMatches(%s, %s, aes=%v) = %v, want %v", c.ksn, c.prefix, c.aes, got, c.want)
		}
	}
	var buf [24]byte
	if n := testing.AllocsPerRun(100, func() { _ = AppendKSNPrefix(buf[:0], "FFFF9876543210F00001") }); n != 0 {
		t.Errorf("AppendKSNPrefix allocates %v times", n)
	}
	if n := testing.AllocsPerRun(100, func() { _ = PrefixMatches("FFFF9876543210F00001", "FFFF9876543210E", false) }); n != 0 {
		t.Errorf("PrefixMatches allocates %v times", n)
	}
}

// TestDeviceCounter: the device and counter of a TDES and an AES KSN, as their own
// types give them, and a clear error for another length.
func TestDeviceCounter(t *testing.T) {
	for _, ksn := range []string{"FFFF9876543210E00007", "123456789012345600000009"} {
		dev, c, err := DeviceCounter(ksn)
		if err != nil {
			t.Fatal(err)
		}
		var wantDev string
		var wantC uint32
		if len(ksn) == 20 {
			k, _ := ParseKSN(ksn)
			wantDev, wantC = k.DeviceID(), k.Counter()
		} else {
			k, _ := ParseAESKSN(ksn)
			wantDev, wantC = k.DeviceID(), k.Counter()
		}
		if dev != wantDev || c != wantC || c == 0 {
			t.Errorf("%s: %s %d, want %s %d", ksn, dev, c, wantDev, wantC)
		}
	}
	if _, _, err := DeviceCounter("FFFF98"); err == nil || !strings.Contains(err.Error(), "want 20 or 24") {
		t.Errorf("a 6-digit KSN: %v", err)
	}
}
