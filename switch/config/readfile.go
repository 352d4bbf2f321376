package config

import "github.com/switchyard/switchyard/internal/boundfile"

// Bounds of the files the configuration reads: a path that names a device, a FIFO
// or a huge file by mistake (/dev/zero, a log) must fail with its name, not
// exhaust the memory or wait forever for a writer.
const (
	// MaxConfigBytes bounds the configuration file (16 MiB).
	MaxConfigBytes = 16 << 20
	// MaxSecretBytes bounds a file the configuration names for a secret or a key
	// (admin.tokens_file, the card hash key, webhook secrets, attestation keys):
	// 64 KiB.
	MaxSecretBytes = boundfile.MaxSecretBytes
)

// readFile reads path, a regular file of at most max bytes (boundfile.Read);
// errors name the path and what is wrong (the caller adds the key).
func readFile(path string, max int64) ([]byte, error) { return boundfile.Read(path, max) }
