package config

import (
	"fmt"
	"io"
	"os"
)

// Bounds of the files the configuration reads: a path that names a device, a FIFO
// or a huge file by mistake (/dev/zero, a log) must fail with its name, not
// exhaust the memory or wait forever for a writer.
const (
	// MaxConfigBytes bounds the configuration file (16 MiB).
	MaxConfigBytes = 16 << 20
	// MaxSecretBytes bounds a file the configuration names for a secret or a key
	// (admin.tokens_file, the card hash key, webhook secrets, attestation keys):
	// 64 KiB.
	MaxSecretBytes = 64 << 10
)

// readFile reads path, a regular file of at most max bytes; errors name the
// path and what is wrong (the caller adds the key).
func readFile(path string, max int64) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file but %s", path, fileKind(fi.Mode()))
	}
	if fi.Size() > max {
		return nil, fmt.Errorf("%s is %d bytes, more than the %d bytes allowed", path, fi.Size(), max)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	// The file may have grown since the Stat.
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%s is more than the %d bytes allowed", path, max)
	}
	return b, nil
}

// fileKind names the kind of file m is, for errors.
func fileKind(m os.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&os.ModeNamedPipe != 0:
		return "a named pipe (FIFO)"
	case m&os.ModeSocket != 0:
		return "a socket"
	case m&os.ModeDevice != 0:
		return "a device"
	}
	return "a special file (" + m.Type().String() + ")"
}
