package keys

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"

	"github.com/switchyard/switchyard/hsm"
	"github.com/switchyard/switchyard/hsm/kcv"
	"github.com/switchyard/switchyard/internal/boundfile"
)

// DemoLMKHex is the fixed LMK (AES-256) of demo mode. It is public: LoadLMK and the
// store refuse it outside demo mode. Its KCV (AES-CMAC) is 03ADDE.
const DemoLMKHex = "92ED0547BAB590FD225245A42D3C369556480EFB215D6225442548DB0947817F"

// DemoLMK returns a fresh copy of the demo LMK.
func DemoLMK() []byte {
	b, _ := hex.DecodeString(DemoLMKHex)
	return b
}

var demoLMKKCV = sync.OnceValue(func() string {
	k, _ := kcv.AES(DemoLMK())
	return k.String()
})

// LMKSource says where the LMK comes from. File takes precedence over Env; in demo
// mode with neither, the demo LMK is used.
type LMKSource struct {
	// File holds the LMK as 64 hex digits; it must not be readable or writable by
	// group or others (like ssh's private keys).
	File string
	// Env names an environment variable holding the LMK as 64 hex digits.
	Env string
	// Demo allows (and defaults to) the public demo LMK.
	Demo bool
}

// LoadLMK returns the 32-byte LMK from src. The caller wipes it after handing it to
// the HSM.
func LoadLMK(src LMKSource) ([]byte, error) {
	var lmk []byte
	var err error
	switch {
	case src.File != "":
		lmk, err = LoadLMKFile(src.File)
	case src.Env != "":
		v, ok := os.LookupEnv(src.Env)
		if !ok || strings.TrimSpace(v) == "" {
			return nil, fmt.Errorf("LMK: environment variable %s is not set", src.Env)
		}
		lmk, err = ParseLMKHex(v)
		if err != nil {
			err = fmt.Errorf("LMK in environment variable %s: %w", src.Env, err)
		}
	case src.Demo:
		return DemoLMK(), nil
	default:
		return nil, fmt.Errorf("LMK: none given: name an LMK file or environment variable (64 hex digits, AES-256), or run in demo mode")
	}
	if err != nil {
		return nil, err
	}
	if !src.Demo {
		if k, _ := kcv.AES(lmk); k.String() == demoLMKKCV() {
			clear(lmk)
			return nil, fmt.Errorf("LMK: %w: it is the public demo LMK; refusing outside demo mode", hsm.ErrDemoKey)
		}
		if why := WeakLMK(lmk); why != "" {
			clear(lmk)
			return nil, fmt.Errorf("LMK: %w: %s; refusing outside demo mode (generate one: openssl rand -hex 32)", ErrWeakLMK, why)
		}
	}
	return lmk, nil
}

// ErrWeakLMK is LoadLMK's refusal of an LMK that WeakLMK finds weak, outside demo
// mode.
var ErrWeakLMK = errors.New("weak LMK")

// knownLMKs are published AES-256 keys that someone may paste as an LMK: the
// ascending bytes 00 to 1F (the key of FIPS 197 appendix C.3) and the AES-256 key
// of NIST SP 800-38A's examples (F.1.5 and on). Anybody holding the standard holds
// them.
var knownLMKs = []string{
	"000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F",
	"603DEB1015CA71BE2B73AEF0857D77811F352C073B6108D72D9810A30914DFF4",
}

// WeakLMK says why lmk (32 bytes) is not a random key, or "" when it finds no
// reason: fewer than 8 distinct byte values (all zeros, one byte repeated, any short
// pattern repeated: 32 random bytes have about 30), its two halves equal (a
// 16-byte key such as 0123456789ABCDEFFEDCBA9876543210 typed twice), or a
// published test key (knownLMKs), also byte-reversed. It never quotes the key.
func WeakLMK(lmk []byte) string {
	distinct := map[byte]bool{}
	for _, b := range lmk {
		distinct[b] = true
	}
	if len(distinct) < 8 {
		return fmt.Sprintf("it has only %d distinct byte values (a random key has about 30), a pattern, not a random key", len(distinct))
	}
	if h := len(lmk) / 2; bytes.Equal(lmk[:h], lmk[h:]) {
		return "its two halves are equal, a shorter key repeated, not a random key"
	}
	rev := make([]byte, len(lmk))
	for i, b := range lmk {
		rev[len(lmk)-1-i] = b
	}
	defer clear(rev)
	for _, k := range knownLMKs {
		known, _ := hex.DecodeString(k)
		if bytes.Equal(lmk, known) || bytes.Equal(rev, known) {
			return "it is a test key published in FIPS 197 or NIST SP 800-38A"
		}
	}
	return ""
}

// LoadLMKFile reads an LMK of 64 hex digits from path. Like ssh with a private key,
// it refuses a file that group or others may read or write; it refuses as well a
// file that is not a regular one (a device, a FIFO) or is larger than
// boundfile.MaxSecretBytes.
func LoadLMKFile(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("LMK file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("LMK file %s is not a regular file but %s", path, boundfile.Kind(fi.Mode()))
	}
	if runtime.GOOS != "windows" && fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("LMK file %s has permissions %04o: it must not be accessible by group or others (chmod 600 %s)", path, fi.Mode().Perm(), path)
	}
	raw, err := boundfile.Read(path, boundfile.MaxSecretBytes)
	if err != nil {
		return nil, fmt.Errorf("LMK file: %w", err)
	}
	defer clear(raw)
	lmk, err := ParseLMKHex(string(raw))
	if err != nil {
		return nil, fmt.Errorf("LMK file %s: %w", path, err)
	}
	return lmk, nil
}

// ParseLMKHex parses an LMK of exactly 64 hex digits (surrounding white space is
// ignored).
func ParseLMKHex(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if len(s) != 2*hsm.LMKLength {
		return nil, fmt.Errorf("the LMK must be %d hex digits (AES-256), got %d characters", 2*hsm.LMKLength, len(s))
	}
	b, err := hex.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("the LMK is not hex")
	}
	return b, nil
}
