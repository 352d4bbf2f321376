package payshield

import (
	"bufio"
	"bytes"
	"errors"
	"testing"
)

func TestCodecRoundTrip(t *testing.T) {
	req := Request{Header: "AB12", Code: "CA", Body: []byte("U0123456789ABCDEF0123456789ABCDEF")}
	frame, err := AppendRequest(nil, req)
	if err != nil {
		t.Fatal(err)
	}
	if frame[0] != 0 || int(frame[1]) != 4+2+len(req.Body) {
		t.Fatalf("length prefix % X", frame[:2])
	}
	msg, err := ReadFrame(bufio.NewReader(bytes.NewReader(frame)), nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseRequest(msg, 4)
	if err != nil || got.Header != req.Header || got.Code != req.Code || string(got.Body) != string(req.Body) {
		t.Fatalf("request round trip: %+v, %v", got, err)
	}
	code, _ := ResponseCode("CA")
	resp := Response{Header: "AB12", Code: code, ErrCode: "01", Body: []byte("X")}
	frame, err = AppendResponse(nil, resp)
	if err != nil {
		t.Fatal(err)
	}
	msg, err = ReadFrame(bytes.NewReader(frame), nil)
	if err != nil {
		t.Fatal(err)
	}
	gr, err := ParseResponse(msg, 4)
	if err != nil || gr.Header != "AB12" || gr.Code != "CB" || gr.ErrCode != "01" || string(gr.Body) != "X" {
		t.Fatalf("response round trip: %+v, %v", gr, err)
	}
	for in, want := range map[string]string{"NC": "ND", "M6": "M7", "A0": "A1", "G0": "G1"} {
		if got, err := ResponseCode(in); got != want || err != nil {
			t.Errorf("ResponseCode(%s) = %s, %v; want %s", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "C", "CZ", "c1", "A9"} {
		if _, err := ResponseCode(bad); !errors.Is(err, ErrFrame) {
			t.Errorf("ResponseCode(%q) = %v, want ErrFrame", bad, err)
		}
	}
}

// TestCodecRefuses checks that malformed frames are errors, not panics or hangs.
func TestCodecRefuses(t *testing.T) {
	for name, in := range map[string][]byte{
		"zero length": {0, 0},
		"cut short":   {0, 9, 'A', 'B'},
		"too long":    {0xFF, 0xFF},
	} {
		if _, err := ReadFrame(bytes.NewReader(in), nil); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if _, err := ParseResponse([]byte("HDRXCB0"), 4); !errors.Is(err, ErrFrame) {
		t.Errorf("short answer: %v", err)
	}
	// payShield's key block error codes have letters (A1 to BE).
	if r, err := ParseResponse([]byte("HDRXCBA6"), 4); err != nil || r.ErrCode != "A6" {
		t.Errorf("letter error code A6: %+v, %v", r, err)
	}
	for _, in := range []string{"HDRXCBa6", "HDRXCB#1", "HDRXCB 1"} {
		if _, err := ParseResponse([]byte(in), 4); !errors.Is(err, ErrFrame) {
			t.Errorf("error code of %q: %v", in, err)
		}
	}
	f := NewFields([]byte("S0123"))
	if f.Key("key", 0); f.Err() == nil {
		t.Error("cut key block token accepted")
	}
	f = NewFields([]byte("UXYZ"))
	if f.Key("key", 0); f.Err() == nil {
		t.Error("short U token accepted")
	}
}

// FuzzPayShieldFrame feeds arbitrary bytes to the frame reader and both parsers and every
// field reader: errors are fine, panics and over-reads are not, and what parses
// re-encodes to the same bytes.
func FuzzPayShieldFrame(f *testing.F) {
	f.Add([]byte("\x00\x06HDR1NC"), 4)
	f.Add([]byte("\x00\x0aHDR1ND0012"), 4)
	f.Add([]byte("\x00\x26HDR1BUFFFS0016P0TE00E0000"), 4)
	f.Add([]byte("\x00\x02NC"), 0)
	f.Fuzz(func(t *testing.T, data []byte, hl int) {
		if hl < 0 || hl > 32 {
			return
		}
		msg, err := ReadFrame(bytes.NewReader(data), nil)
		if err != nil {
			return
		}
		if req, err := ParseRequest(msg, hl); err == nil {
			out, err := AppendRequest(nil, req)
			if err == nil && !bytes.Equal(out[2:], msg) {
				t.Fatalf("request re-encodes to %q, was %q", out[2:], msg)
			}
			fs := NewFields(req.Body)
			fs.Key("key", 16)
			fs.readVar("var")
			fs.Until("until", ';', 19)
			fs.readPAN()
			fs.Hex("hex", 4)
			fs.End()
			readSpec(NewFields(req.Body))
		}
		if resp, err := ParseResponse(msg, hl); err == nil && printable(resp.Header) && printable(resp.Code) {
			out, err := AppendResponse(nil, resp)
			if err == nil && !bytes.Equal(out[2:], msg) {
				t.Fatalf("answer re-encodes to %q, was %q", out[2:], msg)
			}
		}
	})
}
