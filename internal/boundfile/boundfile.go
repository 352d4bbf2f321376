// Package boundfile reads the files an operator names (the configuration, its
// secrets, the LMK file, the TLS certificates, keys and CAs, the rule files) within
// a bound: a path that names a device, a FIFO or a huge file by mistake
// (/dev/zero, a log) fails at once with its name, instead of exhausting the memory
// or waiting forever for a writer. It is a leaf: keys/ and risk/ use it as well as
// switch/.
package boundfile

import (
	"crypto/tls"
	"fmt"
	"io"
	"os"
	"syscall"
)

// Bounds of the files read through this package.
const (
	// MaxSecretBytes bounds a file that holds a secret or a key (an LMK, a card
	// hash key, a token list): 64 KiB.
	MaxSecretBytes = 64 << 10
	// MaxPEMBytes bounds a PEM file: a certificate chain, its private key, a CA
	// bundle (the system's whole bundle is about 220 KB): 4 MiB.
	MaxPEMBytes = 4 << 20
)

// Read reads path, a regular file (or a symlink to one) of at most max bytes.
// Errors name the path and what is wrong; the caller adds the configuration key.
func Read(path string, max int64) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if err := check(path, fi, max); err != nil {
		return nil, err
	}
	// O_NONBLOCK: should a FIFO have replaced the file since the Stat, the open
	// returns at once instead of waiting for a writer, and the Stat of the open
	// file below refuses it. It changes nothing for a regular file.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if fi, err = f.Stat(); err != nil {
		return nil, err
	}
	if err := check(path, fi, max); err != nil {
		return nil, err
	}
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

// check refuses fi, path's, unless it is a regular file of at most max bytes.
func check(path string, fi os.FileInfo, max int64) error {
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file but %s", path, Kind(fi.Mode()))
	}
	if fi.Size() > max {
		return fmt.Errorf("%s is %d bytes, more than the %d bytes allowed", path, fi.Size(), max)
	}
	return nil
}

// Kind names the kind of file m is, for errors.
func Kind(m os.FileMode) string {
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

// KeyPair loads a certificate chain and its private key from two PEM files, as
// tls.LoadX509KeyPair does, each read by Read within MaxPEMBytes. An error names
// the file at fault.
func KeyPair(certFile, keyFile string) (tls.Certificate, error) {
	certPEM, err := Read(certFile, MaxPEMBytes)
	if err != nil {
		return tls.Certificate{}, err
	}
	keyPEM, err := Read(keyFile, MaxPEMBytes)
	if err != nil {
		return tls.Certificate{}, err
	}
	defer clear(keyPEM)
	return tls.X509KeyPair(certPEM, keyPEM)
}
