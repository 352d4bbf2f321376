// Package sparse reads a file by its data only, skipping its holes. Badger creates
// its value log and memtable files at their full size (2 GiB and 128 MiB by the
// switch's options), almost all of it holes; a test that looks for card data in every
// file of a data directory read gigabytes of zeros with os.ReadFile (19 s, most of it
// in the kernel, for one test of switch/server).
package sparse

import (
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
)

// Whence values of lseek(2) on Linux (and the BSDs' and Solaris's SEEK_DATA and
// SEEK_HOLE have the same meaning): the next offset holding data, the next hole.
const (
	seekData = 3
	seekHole = 4
)

// ReadData returns the data of the file at path with each hole replaced by a single
// zero byte: every run of bytes other than zero in the file is in the result, as it
// is, and no run is joined to another that the file keeps apart. A file system
// that cannot tell holes (lseek refuses SEEK_DATA) gives the whole file, as
// os.ReadFile.
func ReadData(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []byte
	for pos := int64(0); ; {
		start, err := f.Seek(pos, seekData)
		if errors.Is(err, syscall.ENXIO) {
			return out, nil // no data after pos
		}
		if err != nil {
			if pos == 0 && errors.Is(err, syscall.EINVAL) {
				return os.ReadFile(path)
			}
			return nil, fmt.Errorf("sparse: %s: seek data from %d: %w", path, pos, err)
		}
		end, err := f.Seek(start, seekHole)
		if err != nil {
			return nil, fmt.Errorf("sparse: %s: seek hole from %d: %w", path, start, err)
		}
		if start > 0 {
			out = append(out, 0) // the hole before this data
		}
		n := len(out)
		out = append(out, make([]byte, end-start)...)
		if _, err := f.ReadAt(out[n:], start); err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("sparse: %s: read %d bytes at %d: %w", path, end-start, start, err)
		}
		pos = end
	}
}
