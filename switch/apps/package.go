package apps

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/switchyard/switchyard/internal/carddata"
	"github.com/switchyard/switchyard/switch/registry"
)

// Package is a registered application package (its metadata; the blob is on disk
// under its SHA-256).
type Package struct {
	Name       string    `json:"name"`
	Version    string    `json:"version"`
	Models     []string  `json:"models,omitempty"` // terminal models it runs on; empty: any
	Kinds      []string  `json:"kinds,omitempty"`  // terminal kinds (pos, mpos, softpos); empty: any
	Size       int64     `json:"size"`
	SHA256     string    `json:"sha256"` // hex, lower case
	KeyID      string    `json:"key_id"`
	Signature  string    `json:"signature"` // base64 (std or URL encoding)
	UploadedAt time.Time `json:"uploaded_at"`
	UploadedBy string    `json:"uploaded_by"`
}

// Ref is "name@version".
func (p *Package) Ref() string { return p.Name + "@" + p.Version }

// Statement is the text the app-signing key signs for a package: every field that
// decides what a terminal runs, one per line, models and kinds sorted.
func Statement(name, version, sha256hex string, size int64, models, kinds []string) []byte {
	m := slices.Sorted(slices.Values(models))
	k := slices.Sorted(slices.Values(kinds))
	return []byte("switchyard-app-v1\nname=" + name + "\nversion=" + version + "\nsha256=" + strings.ToLower(sha256hex) +
		"\nsize=" + strconv.FormatInt(size, 10) + "\nmodels=" + strings.Join(m, ",") + "\nkinds=" + strings.Join(k, ",") + "\n")
}

// SigningKey is an app-signing public key.
type SigningKey struct {
	ID        string    `json:"id"`
	PublicKey string    `json:"public_key"`          // PEM "PUBLIC KEY" (PKIX): Ed25519 or ECDSA
	Algorithm string    `json:"algorithm,omitempty"` // ed25519 or ecdsa (filled from the key)
	AddedAt   time.Time `json:"added_at,omitzero"`
	AddedBy   string    `json:"added_by,omitempty"`
	Revoked   bool      `json:"revoked,omitempty"` // a revoked key verifies nothing: no upload, publication or offer
	Change    string    `json:"change,omitempty"`  // the approved change that put it as it is (filled by the fold)
}

// parsePublicKey reads a PEM PKIX public key: Ed25519, or ECDSA on P-256, the
// curve the terminals verify (ECDSA with SHA-256, docs/apps.md). An ECDSA key on
// another curve (P-224, P-384, P-521) is refused, naming the curve: before 6
// December 2026 any curve was accepted, and a key approved then is refused here
// too, so that uploads it signs and publications of what it signed are refused
// (state.trust).
func parsePublicKey(s string) (any, string, error) {
	b, _ := pem.Decode([]byte(s))
	if b == nil {
		return nil, "", fmt.Errorf("public key: not PEM (want -----BEGIN PUBLIC KEY-----)")
	}
	k, err := x509.ParsePKIXPublicKey(b.Bytes)
	if err != nil {
		return nil, "", fmt.Errorf("public key: %w", err)
	}
	switch k := k.(type) {
	case ed25519.PublicKey:
		return k, "ed25519", nil
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return nil, "", fmt.Errorf("public key: ECDSA on curve %s: the terminals verify ECDSA on P-256 only (or Ed25519)", k.Curve.Params().Name)
		}
		return k, "ecdsa", nil
	}
	return nil, "", fmt.Errorf("public key: %T: want Ed25519 or ECDSA P-256", k)
}

// verify checks sig over msg with the PEM public key pub.
func verify(pub, sigB64 string, msg []byte) error {
	k, _, err := parsePublicKey(pub)
	if err != nil {
		return err
	}
	sig, err := decodeB64(sigB64)
	if err != nil {
		return fmt.Errorf("signature: not base64: %w", err)
	}
	switch k := k.(type) {
	case ed25519.PublicKey:
		if !ed25519.Verify(k, msg, sig) {
			return fmt.Errorf("Ed25519 signature does not verify")
		}
	case *ecdsa.PublicKey:
		h := sha256.Sum256(msg)
		if !ecdsa.VerifyASN1(k, h[:], sig) {
			return fmt.Errorf("ECDSA signature does not verify")
		}
	}
	return nil
}

func decodeB64(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			return b, nil
		}
	}
	return nil, fmt.Errorf("%d characters", len(s))
}

// UploadRequest is the metadata of an upload (the blob is the body).
type UploadRequest struct {
	Name      string
	Version   string
	Models    []string
	Kinds     []string
	KeyID     string
	Signature string
	// SHA256, when set, is the hash the uploader expects (hex): a blob that
	// arrives different is refused before the signature is even checked.
	SHA256 string
}

func validName(s string) bool {
	if s == "" || len(s) > 64 || carddata.InID(s) {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

func validVersion(v string) bool {
	_, err := registry.CompareVersions(v, v)
	return err == nil && len(v) <= 32
}

func (u *UploadRequest) validate() error {
	switch {
	case !validName(u.Name):
		return invalidf("package name %q: want 1 to 64 letters, digits, '-', '_' or '.', and no card number", carddata.MaskID(u.Name))
	case !validVersion(u.Version):
		return invalidf("package %s: version %q: want a dotted numeric version like 2.10.3", u.Name, u.Version)
	case u.KeyID == "":
		return invalidf("package %s@%s: no signing key ID: every package must be signed", u.Name, u.Version)
	case u.Signature == "":
		return invalidf("package %s@%s: no signature: every package must be signed", u.Name, u.Version)
	}
	for _, m := range u.Models {
		if !validName(m) {
			return invalidf("package %s@%s: model %q: want an identifier, with no card number", u.Name, u.Version, carddata.MaskID(m))
		}
	}
	for _, k := range u.Kinds {
		if !registry.TerminalKind(k).Valid() {
			return invalidf("package %s@%s: kind %q: want pos, mpos or softpos", u.Name, u.Version, k)
		}
	}
	return nil
}

// blobs is the content-addressed store of package blobs.
type blobs struct{ dir string }

func (b blobs) path(sum string) string { return filepath.Join(b.dir, "sha256", sum) }

// put copies r to a temporary file while hashing it (at most max bytes) and
// returns the file's name, size and hex SHA-256. The caller renames or removes it.
func (b blobs) put(r io.Reader, max int64) (string, int64, string, error) {
	dir := filepath.Join(b.dir, "sha256")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", 0, "", fmt.Errorf("apps: blob directory: %w", err)
	}
	f, err := os.CreateTemp(dir, ".upload-*")
	if err != nil {
		return "", 0, "", fmt.Errorf("apps: blob temporary file: %w", err)
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), io.LimitReader(r, max+1))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return "", 0, "", fmt.Errorf("apps: receive blob: %w", err)
	}
	if n > max {
		os.Remove(f.Name())
		return "", 0, "", invalidf("package larger than apps.max_package_bytes (%d bytes)", max)
	}
	return f.Name(), n, hex.EncodeToString(h.Sum(nil)), nil
}

// hashFile returns the hex SHA-256 of the file at path.
func hashFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
