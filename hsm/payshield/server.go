package payshield

import (
	"bufio"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"

	"github.com/rs/zerolog"

	"github.com/switchyard/switchyard/hsm"
	"github.com/switchyard/switchyard/hsm/kcv"
	"github.com/switchyard/switchyard/hsm/pinblock"
	"github.com/switchyard/switchyard/internal/sym"
)

// Firmware is the firmware version hsm serve reports to NC (9 characters).
const Firmware = "SWYD-0001"

// ServerOptions configure a Server.
type ServerOptions struct {
	// HeaderLength is the length of the message header (default 4).
	HeaderLength int
	// Policy is the PIN block format policy of PIN translation.
	Policy hsm.FormatPolicy
	// Rand is the source of key material; nil means crypto/rand.
	Rand io.Reader
	// Logger receives connection events and failed commands (never key material).
	Logger zerolog.Logger
	// BeforeCommand, when set, is called before each command is run (tests use it
	// to make the HSM slow or to count commands).
	BeforeCommand func(ctx context.Context, code string)
}

// Server is the software HSM behind the payShield host protocol: it holds a
// key-block LMK (the software HSM's AES-256 LMK) and runs each command on the key
// tokens the command carries, keeping no key state of its own.
type Server struct {
	sw      *hsm.Software
	recs    *records
	variant *variantLMK // set: the server holds a variant LMK (NewVariantServer)
	opts    ServerOptions
	lmkC    string // LMK check value, 16 characters for NC
}

// NewServer returns a server over the 32-byte LMK, which it copies.
func NewServer(lmk []byte, opts ServerOptions) (*Server, error) {
	if opts.HeaderLength == 0 {
		opts.HeaderLength = DefaultHeaderLength
	}
	if opts.HeaderLength < 0 || opts.HeaderLength > 32 {
		return nil, fmt.Errorf("hsm serve: header length %d out of range 0-32", opts.HeaderLength)
	}
	sw, err := hsm.NewSoftware(context.Background(), tokenStore{}, lmk, hsm.Options{Policy: opts.Policy, Rand: opts.Rand})
	if err != nil {
		return nil, err
	}
	k, _ := kcv.AES(lmk)
	return &Server{sw: sw, recs: &records{lmk: append([]byte(nil), lmk...), m: map[string]hsm.KeyRecord{}}, opts: opts,
		lmkC: (k.String() + "0000000000")[:16]}, nil
}

// Serve accepts connections on ln until ctx is done, then closes ln and every
// connection and returns after their goroutines have ended.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	var wg sync.WaitGroup
	var mu sync.Mutex
	conns := map[net.Conn]struct{}{}
	stop := context.AfterFunc(ctx, func() {
		ln.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	defer stop()
	var err error
	for {
		var c net.Conn
		c, err = ln.Accept()
		if err != nil {
			break
		}
		mu.Lock()
		conns[c] = struct{}{}
		mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.serveConn(ctx, c)
			mu.Lock()
			delete(conns, c)
			mu.Unlock()
		}()
	}
	stop()
	ln.Close()
	mu.Lock()
	for c := range conns {
		c.Close()
	}
	mu.Unlock()
	wg.Wait()
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// serveConn answers the commands of one connection in order.
func (s *Server) serveConn(ctx context.Context, c net.Conn) {
	defer c.Close()
	r := bufio.NewReaderSize(c, 4096)
	w := bufio.NewWriterSize(c, 4096)
	var buf, out []byte
	for {
		msg, err := ReadFrame(r, buf)
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				s.opts.Logger.Warn().Err(err).Str("remote", c.RemoteAddr().String()).Msg("HSM connection dropped")
			}
			return
		}
		buf = msg[:0]
		req, err := ParseRequest(msg, s.opts.HeaderLength)
		var resp Response
		if err != nil {
			// A message too short or with a bad code gets an answer only when its
			// header can be echoed; the client matches nothing else.
			if len(msg) < s.opts.HeaderLength+2 {
				s.opts.Logger.Warn().Err(err).Msg("HSM command unreadable")
				return
			}
			resp = Response{Header: req.Header, Code: "ZZ", ErrCode: CodeInvalidInput}
		} else {
			resp = s.Handle(ctx, req)
		}
		if out, err = AppendResponse(out[:0], resp); err != nil {
			s.opts.Logger.Error().Err(err).Str("command", req.Code).Msg("HSM answer not encodable")
			return
		}
		if _, err := w.Write(out); err != nil {
			return
		}
		if r.Buffered() == 0 {
			if err := w.Flush(); err != nil {
				return
			}
		}
	}
}

// Handle runs one command and returns its answer.
func (s *Server) Handle(ctx context.Context, req Request) Response {
	code, _ := ResponseCode(req.Code)
	resp := Response{Header: req.Header, Code: code}
	if s.opts.BeforeCommand != nil {
		s.opts.BeforeCommand(ctx, req.Code)
	}
	sess := &session{keys: map[hsm.KeyRef]hsm.KeyRecord{}}
	ctx = context.WithValue(ctx, sessionKey{}, sess)
	f := NewFields(req.Body)
	var body []byte
	var err error
	switch req.Code {
	case "NC":
		body = append([]byte(s.lmkC), Firmware...)
	case "A0":
		body, err = s.generate(ctx, sess, f)
	case "A6":
		body, err = s.importKey(ctx, sess, f)
	case "A8":
		body, err = s.exportKey(ctx, sess, f)
	case "FK":
		body, err = s.formKey(ctx, sess, f)
	case "BU":
		body, err = s.kcv(ctx, sess, f)
	case "CI":
		body, err = s.translateCI(ctx, sess, f)
	case "CA", "CC", "G0":
		body, err = s.translatePIN(ctx, sess, f, req.Code)
	case "M6", "M8":
		body, err = s.mac(ctx, sess, f, req.Code == "M8")
	case "CW", "CY":
		body, err = s.cvv(ctx, sess, f, req.Code == "CY")
	default:
		resp.ErrCode = CodeCommandDisabled
		return resp
	}
	var ce *codeErr
	switch {
	case err == nil:
		resp.ErrCode, resp.Body = CodeOK, body
	case errors.As(err, &ce):
		resp.ErrCode = ce.code
	default:
		resp.ErrCode = codeFor(err)
	}
	if err != nil && resp.ErrCode != CodeVerifyFailed {
		s.opts.Logger.Info().Err(err).Str("command", req.Code).Str("error_code", resp.ErrCode).Msg("HSM command failed")
	}
	return resp
}

// codeErr forces an error code (10 or 11 for the source or destination key).
type codeErr struct {
	code string
	err  error
}

func (e *codeErr) Error() string { return e.err.Error() }
func (e *codeErr) Unwrap() error { return e.err }

// key reads a token field, turns it into a record and adds it to the session. An
// unusable token is answered with parityCode (10 source, 11 destination), or 26 for
// a scheme the server has no LMK for. Under a variant LMK the token is a key of
// type t (the command's key type code, or the type the command implies).
func (s *Server) key(sess *session, f *Fields, name, parityCode string, t hsm.KeyType) (hsm.KeyRef, error) {
	tok := f.Key(name, 0)
	if err := f.Err(); err != nil {
		return hsm.KeyRef{}, err
	}
	return s.resolve(sess, tok, name, parityCode, t)
}

// resolve turns a token read earlier into a record (see key).
func (s *Server) resolve(sess *session, tok, name, parityCode string, t hsm.KeyType) (hsm.KeyRef, error) {
	var rec hsm.KeyRecord
	var err error
	if s.variant != nil {
		rec, err = s.variant.record(tok, t, sess.macAlg)
	} else {
		rec, err = s.recs.record(tok)
	}
	if err != nil {
		if errors.Is(err, errScheme) {
			return hsm.KeyRef{}, err
		}
		return hsm.KeyRef{}, &codeErr{parityCode, fmt.Errorf("%s: %w", name, err)}
	}
	sess.keys[rec.Ref()] = rec
	return rec.Ref(), nil
}

func (s *Server) created(sess *session) ([]byte, error) {
	if sess.created == nil {
		return nil, errors.New("no key was created")
	}
	if s.variant != nil {
		tok, err := s.variant.token(*sess.created, sess.created.Type)
		return []byte(tok), err
	}
	return []byte("S" + sess.created.Block), nil
}

// A0: mode, key type (FFF; under a variant LMK its code), key scheme (S; U or T),
// [";", ZMK/TMK flag, KEK token, export scheme R|X], "#" header (key-block LMK only).
func (s *Server) generate(ctx context.Context, sess *session, f *Fields) ([]byte, error) {
	mode := f.Fixed("mode", 1)
	kt, sc, err := s.typeAndScheme(f)
	if err != nil {
		return nil, err
	}
	var export *hsm.ExportSpec
	if mode == "1" {
		f.Delim(';')
		flag := f.Fixed("ZMK/TMK flag", 1)
		kek, err := s.key(sess, f, "KEK", CodeSourceKeyParity, kekType(flag))
		if err != nil {
			return nil, err
		}
		export = &hsm.ExportSpec{KEK: kek, Format: exportFormat(f.Fixed("key scheme (KEK)", 1))}
	} else if mode != "0" && f.Err() == nil {
		return nil, fmt.Errorf("%w: mode %q (want 0 or 1)", hsm.ErrInput, mode)
	}
	spec, version, err := s.readSpec(f, kt, sc)
	if err != nil {
		return nil, err
	}
	f.End()
	if err := f.Err(); err != nil {
		return nil, err
	}
	sess.next, sess.nextT = version, spec.Type
	res, err := s.sw.GenerateKey(ctx, hsm.GenerateKeyRequest{KeySpec: spec, Export: export})
	if err != nil {
		return nil, err
	}
	body, err := s.created(sess)
	if err != nil {
		return nil, err
	}
	if export != nil {
		body = appendVar(body, res.Exported)
	}
	return append(body, res.KCV...), nil
}

func exportFormat(s string) hsm.ExportFormat {
	if s == "X" {
		return hsm.ExportECB
	}
	return hsm.ExportTR31
}

// A6: key type FFF, KEK token, key under KEK (variable), key scheme S, KCV (2-digit
// length and KCV), "#" header.
//
// Under a variant LMK: key type code, KEK token, key under KEK, key scheme U|T, KCV,
// ";" and the ZMK/TMK flag of the KEK.
func (s *Server) importKey(ctx context.Context, sess *session, f *Fields) ([]byte, error) {
	kt, err := s.keyType(f)
	if err != nil {
		return nil, err
	}
	kekTok := f.Key("KEK", 0)
	wrapped := f.readVar("key under KEK")
	sc, err := s.scheme(f)
	if err != nil {
		return nil, err
	}
	n, _ := strconv.Atoi(f.Digits("KCV length", 2))
	want := f.Fixed("KCV", n)
	spec, version, err := s.readSpec(f, kt, sc)
	if err != nil {
		return nil, err
	}
	kek, err := s.resolve(sess, kekTok, "KEK", CodeSourceKeyParity, s.kekFlag(f))
	if err != nil {
		return nil, err
	}
	f.End()
	if err := f.Err(); err != nil {
		return nil, err
	}
	sess.next, sess.nextT = version, spec.Type
	req := hsm.ImportKeyRequest{KeySpec: spec, KEK: kek, KCV: want}
	if strings.HasPrefix(wrapped, "R") {
		req.TR31 = wrapped[1:]
	} else {
		req.ECB = wrapped
	}
	res, err := s.sw.ImportKey(ctx, req)
	if err != nil {
		return nil, err
	}
	body, err := s.created(sess)
	if err != nil {
		return nil, err
	}
	return append(body, res.KCV...), nil
}

// A8: key type (FFF, or the key's code under a variant LMK), KEK token, key token,
// export scheme R|X, and under a variant LMK ";" and the ZMK/TMK flag of the KEK.
func (s *Server) exportKey(ctx context.Context, sess *session, f *Fields) ([]byte, error) {
	kt, err := s.keyType(f)
	if err != nil {
		return nil, err
	}
	kekTok := f.Key("KEK", 0)
	key, err := s.key(sess, f, "key", CodeSourceKeyParity, kt)
	if err != nil {
		return nil, err
	}
	format := exportFormat(f.Fixed("key scheme (KEK)", 1))
	kek, err := s.resolve(sess, kekTok, "KEK", CodeDestKeyParity, s.kekFlag(f))
	if err != nil {
		return nil, err
	}
	f.End()
	if err := f.Err(); err != nil {
		return nil, err
	}
	out, err := s.sw.ExportKey(ctx, hsm.ExportKeyRequest{Key: key, ExportSpec: hsm.ExportSpec{KEK: kek, Format: format}})
	if err != nil {
		return nil, err
	}
	return append(appendVar(nil, out), sess.keys[key].KCV...), nil
}

// FK: key type FFF, key scheme S, number of components (1 digit), the components in
// hex, "#" header. Like the software HSM, it gives the formed DES key odd parity
// (components of a key with odd parity cannot all have odd parity themselves).
func (s *Server) formKey(ctx context.Context, sess *session, f *Fields) ([]byte, error) {
	kt, sc, err := s.typeAndScheme(f)
	if err != nil {
		return nil, err
	}
	n, _ := strconv.Atoi(f.Digits("number of components", 1))
	n2, _ := strconv.Atoi(f.Digits("component length", 2))
	hexes := make([]string, n)
	for i := range hexes {
		hexes[i] = f.Hex("component", 2*n2)
	}
	spec, version, err := s.readSpec(f, kt, sc)
	if err != nil {
		return nil, err
	}
	f.End()
	if err := f.Err(); err != nil {
		return nil, err
	}
	comps := make([][]byte, n)
	defer func() {
		for _, c := range comps {
			sym.Wipe(c)
		}
	}()
	for i, h := range hexes {
		comps[i], _ = hex.DecodeString(h)
	}
	sess.next, sess.nextT = version, spec.Type
	res, err := s.sw.FormKey(ctx, hsm.FormKeyRequest{KeySpec: spec, Components: comps})
	if err != nil {
		return nil, err
	}
	body, err := s.created(sess)
	if err != nil {
		return nil, err
	}
	body = append(body, res.KCV...)
	for _, k := range res.ComponentKCVs {
		body = append(body, k...)
	}
	return body, nil
}

// BU: key type code FF, key length flag F, key token. Under a variant LMK: the
// 2-digit key type code, key length flag (1 double, 2 triple), key token, and
// after "FF" the 3-digit key type code behind ";" (with a key block, ";FFF" may
// follow the token, as the code FF asks). Then optionally ";", key scheme (ZMK),
// key scheme (LMK) and the KCV type: 0 answers the 16-digit check value of a TDES
// key (the key encrypting zeros), 1 the 6-digit KCV; without it the answer is
// what it always was (6 digits with a key-block LMK, 16 with a variant LMK). The
// trailer is the one the open-source Thales simulator (ThalesSim's
// GenerateCheckValue_BU) reads, and the one payShield manuals give BU (see
// docs/hsm.md, The check values of a cup sign-in).
func (s *Server) kcv(ctx context.Context, sess *session, f *Fields) ([]byte, error) {
	code := strings.ToUpper(f.Fixed("key type code", 2))
	f.Fixed("key length flag", 1)
	tok := f.Key("key", 0)
	var kt hsm.KeyType
	kcvType := ""
	if s.variant != nil && f.Err() == nil && isVariantToken(tok) {
		var ok bool
		if code == "FF" && f.Delim(';') {
			var err error
			if kt, err = typeCode(f); err != nil {
				return nil, err
			}
		} else if kt, ok = buTypeCodes[code]; !ok {
			return nil, &codeErr{CodeKeyTypeInvalid, fmt.Errorf("%w: key type code %q", hsm.ErrKeyUsage, code)}
		}
		if f.Delim(';') {
			kcvType = buTrailer(f)
		}
	} else if f.Delim(';') {
		// A key block: ";FFF" (the key type of code FF) and the trailer, or the
		// trailer alone.
		if x := strings.ToUpper(f.Fixed("key type or KCV trailer", 3)); x == "FFF" {
			if f.Delim(';') {
				kcvType = buTrailer(f)
			}
		} else if f.Err() == nil {
			kcvType = x[2:]
		}
	}
	if err := f.Err(); err != nil {
		return nil, err
	}
	if kcvType != "" && kcvType != "0" && kcvType != "1" {
		return nil, fmt.Errorf("%w: KCV type %q (want 0, 16 digits, or 1, 6 digits)", hsm.ErrInput, kcvType)
	}
	ref, err := s.resolve(sess, tok, "key", CodeSourceKeyParity, kt)
	if err != nil {
		return nil, err
	}
	f.End()
	if err := f.Err(); err != nil {
		return nil, err
	}
	kc, err := s.sw.KCV(ctx, ref)
	if err != nil {
		return nil, err
	}
	switch {
	case kcvType == "1":
		return []byte(kc.KCV), nil
	case kcvType == "0":
		full, err := s.sw.FullCheckValue(ctx, ref)
		if err != nil {
			return nil, err
		}
		return []byte(full), nil
	case s.variant != nil:
		// As payShield (and its simulators) with a variant LMK: 16 digits.
		if full, ok := s.variant.fullCheckOf(ref.ID); ok && strings.HasPrefix(full, kc.KCV) {
			return []byte(full), nil
		}
	}
	return []byte(kc.KCV), nil
}

// buTrailer reads BU's trailer after its ";": key scheme (ZMK), key scheme (LMK),
// KCV type; it returns the KCV type.
func buTrailer(f *Fields) string {
	f.Fixed("key scheme (ZMK)", 1)
	f.Fixed("key scheme (LMK)", 1)
	return f.Fixed("KCV type", 1)
}

// CA/CC: source key token, destination ZPK token, maximum PIN length (2), PIN block,
// source and destination format codes, account number (2-digit length, PAN).
// G0: BDK token, destination ZPK token, KSN length (3 digits), KSN, PIN block,
// source and destination format codes, account number.
// Answer: PIN length ("00": hsm serve does not report it), PIN block, format code.
func (s *Server) translatePIN(ctx context.Context, sess *session, f *Fields, code string) ([]byte, error) {
	srcType := map[string]hsm.KeyType{"CA": hsm.TPK, "CC": hsm.ZPK, "G0": hsm.BDK}[code]
	src, err := s.key(sess, f, "source key", CodeSourceKeyParity, srcType)
	if err != nil {
		return nil, err
	}
	dst, err := s.key(sess, f, "destination ZPK", CodeDestKeyParity, hsm.ZPK)
	if err != nil {
		return nil, err
	}
	req := hsm.TranslatePINRequest{Source: src, Dest: dst}
	if code == "G0" {
		n, _ := strconv.Atoi(f.Digits("KSN length", 3))
		req.KSN = f.Hex("KSN", n)
		rec := sess.keys[src]
		sess.bdk = &rec
	} else {
		f.Digits("maximum PIN length", 2)
	}
	// The PIN block's length follows from the source format, which comes after it.
	rest := f.Remaining()
	blockLen := 16
	if rest >= 32+4+2 {
		if sf, ok := pinFormatOf(string(f.b[f.off+32 : f.off+34])); ok && sf == pinblock.Format4 {
			blockLen = 32
		}
	}
	pb := f.Hex("PIN block", blockLen)
	sf := f.Digits("source format", 2)
	df := f.Digits("destination format", 2)
	req.PAN = f.readPAN()
	f.End()
	if err := f.Err(); err != nil {
		return nil, err
	}
	var ok bool
	if req.SourceFormat, ok = pinFormatOf(sf); !ok {
		return nil, &codeErr{CodePINFormatInvalid, fmt.Errorf("%w: source PIN block format code %q", hsm.ErrInput, sf)}
	}
	if req.DestFormat, ok = pinFormatOf(df); !ok {
		return nil, &codeErr{CodePINFormatInvalid, fmt.Errorf("%w: destination PIN block format code %q", hsm.ErrInput, df)}
	}
	req.PINBlock, _ = hex.DecodeString(pb)
	out, err := s.sw.TranslatePIN(ctx, req)
	if err != nil {
		return nil, err
	}
	body := append([]byte("00"), strings.ToUpper(hex.EncodeToString(out))...)
	return append(body, df...), nil
}

// M6/M8: mode flag, input format (0 binary, 1 hex), MAC size (1: 8 bytes), MAC
// algorithm, padding method, key type FFF, key token, DUKPT ("N" none, or "K", KSN
// length (3), KSN, direction 0 request 1 response), message length (4 hex), message,
// and for M8 the MAC (16 hex).
func (s *Server) mac(ctx context.Context, sess *session, f *Fields, verify bool) ([]byte, error) {
	f.Fixed("mode flag", 1)
	inFmt := f.Fixed("input format", 1)
	f.Fixed("MAC size", 1)
	switch f.Fixed("MAC algorithm", 1) {
	case "3":
		sess.macAlg = hsm.MACRetail
	case "6":
		sess.macAlg = hsm.MACCMAC
	}
	f.Fixed("padding method", 1)
	kt, err := s.keyType(f, hsm.TAK, hsm.ZAK, hsm.BDK)
	if err != nil {
		return nil, err
	}
	ref, err := s.key(sess, f, "MAC key", CodeSourceKeyParity, kt)
	if err != nil {
		return nil, err
	}
	req := hsm.MACRequest{Key: ref}
	if f.Fixed("DUKPT flag", 1) == "K" {
		n, _ := strconv.Atoi(f.Digits("KSN length", 3))
		req.KSN = f.Hex("KSN", n)
		req.Response = f.Fixed("direction", 1) == "1"
		rec := sess.keys[ref]
		sess.bdk = &rec
	}
	n, perr := strconv.ParseUint(f.Hex("message length", 4), 16, 16)
	msg := f.Fixed("message", int(n))
	var m []byte
	if verify {
		m, _ = hex.DecodeString(f.Hex("MAC", 16))
	}
	f.End()
	if err := f.Err(); err != nil || perr != nil {
		return nil, errors.Join(err, perr)
	}
	req.Data = []byte(msg)
	if inFmt == "1" {
		if req.Data, err = hex.DecodeString(msg); err != nil {
			return nil, fmt.Errorf("%w: message is not hex: %w", hsm.ErrInput, err)
		}
	}
	if verify {
		return nil, s.sw.VerifyMAC(ctx, req, m)
	}
	out, err := s.sw.GenerateMAC(ctx, req)
	if err != nil {
		return nil, err
	}
	return []byte(strings.ToUpper(hex.EncodeToString(out))), nil
}

// CW: CVK token, PAN, ";", expiry (YYMM), service code. CY: CVK token, CVV (3), PAN,
// ";", expiry, service code.
func (s *Server) cvv(ctx context.Context, sess *session, f *Fields, verify bool) ([]byte, error) {
	ref, err := s.key(sess, f, "CVK", CodeSourceKeyParity, hsm.CVK)
	if err != nil {
		return nil, err
	}
	var want string
	if verify {
		want = f.Digits("CVV", 3)
	}
	req := hsm.CVVRequest{Key: ref, PAN: f.Until("PAN", ';', 19)}
	req.Expiry = f.Digits("expiry", 4)
	req.ServiceCode = f.Digits("service code", 3)
	f.End()
	if err := f.Err(); err != nil {
		return nil, err
	}
	if verify {
		return nil, s.sw.VerifyCVV(ctx, req, want)
	}
	out, err := s.sw.GenerateCVV(ctx, req)
	return []byte(out), err
}
