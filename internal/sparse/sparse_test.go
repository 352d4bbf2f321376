package sparse

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// TestReadDataSkipsHoles: a 1 GiB file with two runs of data far apart is read as
// those runs (with the blocks they lie in), not as a gigabyte of zeros; both runs
// are found, and apart.
func TestReadDataSkipsHoles(t *testing.T) {
	path := filepath.Join(t.TempDir(), "vlog")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(1 << 30); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("4111111111"), 1<<20-5); err != nil { // across a block boundary
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("111111"), 512<<20); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := ReadData(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte("4111111111")) || !bytes.Contains(b, []byte("111111")) {
		t.Errorf("the data is not all there (%d bytes)", len(b))
	}
	if bytes.Contains(b, []byte("4111111111111111")) {
		t.Error("two runs the file keeps apart were joined")
	}
	if len(b) > 1<<20 {
		t.Errorf("read %d bytes of a file holding 16: the holes were read", len(b))
	}
}

// TestReadDataWholeFile: a file without holes, and an empty one, read as
// os.ReadFile reads them; a missing file is an error.
func TestReadDataWholeFile(t *testing.T) {
	dir := t.TempDir()
	want := bytes.Repeat([]byte("0123456789abcdef"), 10000)
	path := filepath.Join(dir, "full")
	if err := os.WriteFile(path, want, 0o600); err != nil {
		t.Fatal(err)
	}
	if b, err := ReadData(path); err != nil || !bytes.Equal(b, want) {
		t.Errorf("ReadData = %d bytes, %v; want the file's %d", len(b), err, len(want))
	}
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if b, err := ReadData(empty); err != nil || len(b) != 0 {
		t.Errorf("ReadData(empty) = %q, %v", b, err)
	}
	if _, err := ReadData(filepath.Join(dir, "missing")); !os.IsNotExist(err) {
		t.Errorf("ReadData(missing) = %v, want not exist", err)
	}
}
