package bench

import (
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"strings"
)

// ProfileShares reads a pprof CPU profile (gzipped protobuf, as /debug/pprof/profile
// serves it) and returns the CPU time of its samples by class, classify naming the
// class of a sample from its stack's function names (leaf first), and the total.
//
// It exists for `bench --cluster`: in embedded mode the nats-server runs inside the
// switch process, so /proc gives one CPU figure for both, and a profile is the way to
// split it. The reader is a minimal decoder of the profile.proto fields it needs
// (samples, locations, functions, string table), so that the bench needs no pprof
// library.
func ProfileShares(r io.Reader, classify func(stack []string) string) (map[string]int64, int64, error) {
	zr, err := gzip.NewReader(r)
	if err != nil {
		return nil, 0, fmt.Errorf("profile: %w", err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		return nil, 0, fmt.Errorf("profile: %w", err)
	}
	type sample struct {
		locs   []uint64
		values []int64
	}
	var samples []sample
	locFuncs := map[uint64][]uint64{} // location ID -> function IDs, leaf first
	funcName := map[uint64]int64{}    // function ID -> string index
	var strs []string
	err = pbFields(raw, func(field int, wire int, v uint64, b []byte) error {
		switch field {
		case 2: // Sample
			var s sample
			err := pbFields(b, func(f, w int, v uint64, b []byte) error {
				switch f {
				case 1:
					s.locs = append(s.locs, pbRepeated(w, v, b)...)
				case 2:
					for _, x := range pbRepeated(w, v, b) {
						s.values = append(s.values, int64(x))
					}
				}
				return nil
			})
			samples = append(samples, s)
			return err
		case 4: // Location
			var id uint64
			var fns []uint64
			err := pbFields(b, func(f, w int, v uint64, b []byte) error {
				switch f {
				case 1:
					id = v
				case 4: // Line
					return pbFields(b, func(f, w int, v uint64, _ []byte) error {
						if f == 1 {
							fns = append(fns, v)
						}
						return nil
					})
				}
				return nil
			})
			locFuncs[id] = fns
			return err
		case 5: // Function
			var id uint64
			var name int64
			err := pbFields(b, func(f, w int, v uint64, _ []byte) error {
				switch f {
				case 1:
					id = v
				case 2:
					name = int64(v)
				}
				return nil
			})
			funcName[id] = name
			return err
		case 6: // string table
			strs = append(strs, string(b))
		}
		return nil
	})
	if err != nil {
		return nil, 0, fmt.Errorf("profile: %w", err)
	}
	out := map[string]int64{}
	var total int64
	for _, s := range samples {
		if len(s.values) == 0 {
			continue
		}
		v := s.values[len(s.values)-1] // CPU profiles: [samples, nanoseconds]
		var stack []string
		for _, l := range s.locs {
			for _, f := range locFuncs[l] {
				if i := funcName[f]; i >= 0 && int(i) < len(strs) {
					stack = append(stack, strs[i])
				}
			}
		}
		out[classify(stack)] += v
		total += v
	}
	return out, total, nil
}

// NATSClass classifies a stack of the switch's process: "nats-server" when any frame
// is the embedded server's, "nats.go" when any is the NATS client's (the journal's
// publishes and the watchers' reads), else "switch".
func NATSClass(stack []string) string {
	client := false
	for _, fn := range stack {
		if strings.Contains(fn, "github.com/nats-io/nats-server/") {
			return "nats-server"
		}
		if strings.Contains(fn, "github.com/nats-io/nats.go") {
			client = true
		}
	}
	if client {
		return "nats.go"
	}
	return "switch"
}

// pbFields calls fn for each field of a protobuf message: its number, its wire type,
// and its value (varint and fixed types in v, length-delimited bytes in b).
func pbFields(b []byte, fn func(field, wire int, v uint64, b []byte) error) error {
	for len(b) > 0 {
		tag, n := pbVarint(b)
		if n == 0 {
			return errors.New("bad tag")
		}
		b = b[n:]
		field, wire := int(tag>>3), int(tag&7)
		var v uint64
		var body []byte
		switch wire {
		case 0:
			v, n = pbVarint(b)
			if n == 0 {
				return errors.New("bad varint")
			}
			b = b[n:]
		case 1:
			if len(b) < 8 {
				return errors.New("short fixed64")
			}
			b = b[8:]
		case 2:
			l, n := pbVarint(b)
			if n == 0 || uint64(len(b)-n) < l {
				return errors.New("bad length")
			}
			body = b[n : n+int(l)]
			b = b[n+int(l):]
		case 5:
			if len(b) < 4 {
				return errors.New("short fixed32")
			}
			b = b[4:]
		default:
			return fmt.Errorf("wire type %d", wire)
		}
		if err := fn(field, wire, v, body); err != nil {
			return err
		}
	}
	return nil
}

// pbRepeated returns the values of a repeated varint field, packed or not.
func pbRepeated(wire int, v uint64, b []byte) []uint64 {
	if wire == 0 {
		return []uint64{v}
	}
	var out []uint64
	for len(b) > 0 {
		x, n := pbVarint(b)
		if n == 0 {
			break
		}
		out = append(out, x)
		b = b[n:]
	}
	return out
}

func pbVarint(b []byte) (uint64, int) {
	var x uint64
	for i := 0; i < len(b) && i < 10; i++ {
		x |= uint64(b[i]&0x7f) << (7 * i)
		if b[i] < 0x80 {
			return x, i + 1
		}
	}
	return 0, 0
}
