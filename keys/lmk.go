package keys

import (
	"encoding/hex"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"

	"github.com/switchyard/switchyard/hsm"
	"github.com/switchyard/switchyard/hsm/kcv"
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
	}
	return lmk, nil
}

// LoadLMKFile reads an LMK of 64 hex digits from path. Like ssh with a private key,
// it refuses a file that group or others may read or write.
func LoadLMKFile(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("LMK file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("LMK file %s is not a regular file", path)
	}
	if runtime.GOOS != "windows" && fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("LMK file %s has permissions %04o: it must not be accessible by group or others (chmod 600 %s)", path, fi.Mode().Perm(), path)
	}
	raw, err := os.ReadFile(path)
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
