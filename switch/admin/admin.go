// Package admin holds what every part of the admin HTTP API shares: bearer-token
// authentication with roles and JSON request and response helpers. The client the
// commands use to call the API lives with them, in internal/cli/apiclient.
package admin

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/switchyard/switchyard/internal/actorname"
	"github.com/switchyard/switchyard/internal/carddata"
)

// Role is what an authenticated caller of the admin API may do.
type Role string

// The roles of the admin API. Admin may do everything the others may.
const (
	RoleOperator Role = "operator" // requests lifecycle changes, handles incidents and alerts
	RoleReviewer Role = "reviewer" // approves or rejects requested changes
	RoleAnalyst  Role = "analyst"  // edits risk rules and lists, reads the journal
	RoleAdmin    Role = "admin"    // everything, including key management
)

// Valid reports whether r is one of the defined roles.
func (r Role) Valid() bool {
	switch r {
	case RoleOperator, RoleReviewer, RoleAnalyst, RoleAdmin:
		return true
	}
	return false
}

// SystemName is the name the switch records for what it does by itself
// (registry.SystemActor); no token may carry it, or its holder would act as the
// switch: cancel the changes the switch requests, pass for its actions.
const SystemName = "system"

// Principal is an authenticated caller: the name recorded in audit logs and its role.
type Principal struct {
	Name string `json:"name" yaml:"name"`
	Role Role   `json:"role" yaml:"role"`
}

// Token binds a bearer token to a principal.
type Token struct {
	Token     string `yaml:"token"`
	Principal `yaml:",inline"`
}

type ctxKey struct{}

// WithPrincipal returns a context that carries p.
func WithPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, ctxKey{}, p)
}

// PrincipalFrom returns the principal that Authenticator put into the request context.
func PrincipalFrom(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(ctxKey{}).(Principal)
	return p, ok
}

// Authenticator checks bearer tokens. The zero value accepts no token. Its tokens can
// be replaced while it serves (configuration reload).
type Authenticator struct {
	mu     sync.RWMutex
	tokens []Token
	// refused is OnRefused's function.
	refused atomic.Pointer[func(Refusal)]
	// trusted are the reverse proxies whose X-Forwarded-For (or Forwarded) names
	// a refusal's client (TrustProxies).
	trusted atomic.Pointer[Proxies]
}

// Refusal is a request Require refused: no or an unknown bearer token (401), or a
// principal whose role may not make it (403). It never holds the token.
type Refusal struct {
	Status    int    // 401 or 403
	Principal string // the token's holder on a 403, "" on a 401
	Method    string
	Path      string
	Remote    string // the client's IP address (ClientAddr: behind a trusted proxy, from X-Forwarded-For or Forwarded)
	Peer      string // the connection's address, ip:port (a trusted proxy's when Remote came from its header)
	Reason    string // "missing bearer token", "unknown bearer token", "role operator may not ..."
}

// OnRefused sets fn to be called for every request Require refuses, so that the
// caller logs and counts invalid access attempts (PCI DSS 10.2.1.4). fn must not
// block.
func (a *Authenticator) OnRefused(fn func(Refusal)) { a.refused.Store(&fn) }

// TrustProxies sets the reverse proxies (ParseTrustedProxies) whose
// X-Forwarded-For or Forwarded header (p.Header) names the client of a refusal
// (Refusal.Remote, ClientAddr). None by default: the connection's peer is the
// client.
func (a *Authenticator) TrustProxies(p Proxies) {
	p.Nets = append([]netip.Prefix(nil), p.Nets...)
	a.trusted.Store(&p)
}

// refuse answers r with status and err, and tells the OnRefused function.
func (a *Authenticator) refuse(w http.ResponseWriter, r *http.Request, status int, who string, err error) {
	if fn := a.refused.Load(); fn != nil {
		var trusted Proxies
		if p := a.trusted.Load(); p != nil {
			trusted = *p
		}
		(*fn)(Refusal{Status: status, Principal: who, Method: r.Method, Path: r.URL.Path, Remote: ClientAddr(r, trusted), Peer: r.RemoteAddr, Reason: err.Error()})
	}
	WriteError(w, status, err)
}

// NewAuthenticator returns an Authenticator for the given tokens. It refuses an
// empty token, an empty or reserved name (SystemName), an unknown role or a token
// given twice.
func NewAuthenticator(tokens []Token) (*Authenticator, error) {
	if err := checkTokens(tokens); err != nil {
		return nil, err
	}
	return &Authenticator{tokens: append([]Token(nil), tokens...)}, nil
}

// SetTokens replaces the tokens, after the same checks as NewAuthenticator.
func (a *Authenticator) SetTokens(tokens []Token) error {
	if err := checkTokens(tokens); err != nil {
		return err
	}
	a.mu.Lock()
	a.tokens = append([]Token(nil), tokens...)
	a.mu.Unlock()
	return nil
}

func checkTokens(tokens []Token) error {
	seen := map[string]bool{}
	for i, t := range tokens {
		if t.Token == "" {
			return fmt.Errorf("admin token %d (%s): empty token", i, t.Name)
		}
		if strings.TrimSpace(t.Name) == "" || actorname.Same(t.Name, SystemName) {
			return fmt.Errorf("admin token %d: name %q: want the name of the person who holds it (the audit logs record it), not empty and not %q, the switch's own, or a name that reads as it", i, t.Name, SystemName)
		}
		if !t.Role.Valid() {
			return fmt.Errorf("admin token %d (%s): unknown role %q (want operator, reviewer, analyst or admin)", i, t.Name, t.Role)
		}
		if seen[t.Token] {
			return fmt.Errorf("admin token %d (%s): token given twice", i, t.Name)
		}
		seen[t.Token] = true
	}
	return nil
}

// Lookup returns the principal for a bearer token, comparing in constant time.
func (a *Authenticator) Lookup(token string) (Principal, bool) {
	if a == nil || token == "" {
		return Principal{}, false
	}
	a.mu.RLock()
	defer a.mu.RUnlock()
	var found Principal
	ok := false
	for _, t := range a.tokens {
		if subtle.ConstantTimeCompare([]byte(t.Token), []byte(token)) == 1 {
			found, ok = t.Principal, true
		}
	}
	return found, ok
}

// HasName reports whether one of a's tokens is held by name (its principal's
// name), or by a name that reads as it ("Alice" for alice: actorname.Same). A
// console user may not take such a name (switch/api, switch/console): the oplog
// records the name only, and could not tell the two people apart.
func (a *Authenticator) HasName(name string) bool {
	if a == nil {
		return false
	}
	a.mu.RLock()
	defer a.mu.RUnlock()
	for _, t := range a.tokens {
		if actorname.Same(t.Name, name) {
			return true
		}
	}
	return false
}

// RolesOf returns the roles of the tokens held by name, exactly that name, in
// the order of the configuration (none when no token has it). The registry asks
// it at each approval (registry.Options.TokenRoles): a change is applied only
// while its requester may still request changes.
func (a *Authenticator) RolesOf(name string) []Role {
	if a == nil {
		return nil
	}
	a.mu.RLock()
	defer a.mu.RUnlock()
	var out []Role
	for _, t := range a.tokens {
		if t.Name == name {
			out = append(out, t.Role)
		}
	}
	return out
}

// Require wraps h so that it runs only for a caller whose bearer token maps to one of
// roles (RoleAdmin is always allowed): no or unknown token gives 401, another role 403.
// It lifts the request's read deadline for h (an authenticated body may be slow).
func (a *Authenticator) Require(h http.Handler, roles ...Role) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth := r.Header.Get("Authorization")
		token, found := strings.CutPrefix(auth, "Bearer ")
		if !found {
			a.refuse(w, r, http.StatusUnauthorized, "", errors.New("missing bearer token"))
			return
		}
		p, ok := a.Lookup(strings.TrimSpace(token))
		if !ok {
			a.refuse(w, r, http.StatusUnauthorized, "", errors.New("unknown bearer token"))
			return
		}
		allowed := p.Role == RoleAdmin
		for _, role := range roles {
			if p.Role == role {
				allowed = true
			}
		}
		if !allowed {
			a.refuse(w, r, http.StatusForbidden, p.Name, fmt.Errorf("role %s may not %s %s", p.Role, r.Method, r.URL.Path))
			return
		}
		// The caller is known: its body may take its time (the admin server bounds
		// the bodies of callers not yet known, switch/server's boundBodies).
		_ = http.NewResponseController(w).SetReadDeadline(time.Time{})
		h.ServeHTTP(w, r.WithContext(WithPrincipal(r.Context(), p)))
	})
}

// ErrorBody is the JSON body of every error answer of the admin API.
type ErrorBody struct {
	Error string `json:"error"`
}

// WriteJSON writes v as a JSON answer with the given status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// WriteError writes err as a JSON error answer with the given status, with the
// card numbers it quotes masked: an error may quote what the request held (an
// ID in the path that was a pasted PAN), and the answer reaches logs and
// screens.
func WriteError(w http.ResponseWriter, status int, err error) {
	WriteJSON(w, status, ErrorBody{Error: carddata.MaskField(err.Error())})
}

// ReadJSON decodes the request body into v, refusing unknown fields, bodies over 8
// MiB and bodies that are not UTF-8 (ValidUTF8).
func ReadJSON(r *http.Request, v any) error {
	raw, err := io.ReadAll(io.LimitReader(r.Body, 8<<20))
	if err != nil {
		return fmt.Errorf("request body: %w", err)
	}
	if err := ValidUTF8(raw); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("request body: %w", err)
	}
	return OneValue(dec)
}

// ValidUTF8 returns an error naming the offset of the first byte of raw, a request
// body, that is not UTF-8. encoding/json would read such a byte in a string as
// U+FFFD without a word, and a name sent in GBK, say, would be stored as question
// marks rather than refused.
func ValidUTF8(raw []byte) error {
	if utf8.Valid(raw) {
		return nil
	}
	at := 0
	for at < len(raw) {
		r, n := utf8.DecodeRune(raw[at:])
		if r == utf8.RuneError && n == 1 {
			break
		}
		at += n
	}
	return fmt.Errorf("request body: not UTF-8 (byte 0x%02X at offset %d): send text in UTF-8", raw[at], at)
}

// OneValue returns an error when dec, which has decoded a request body's JSON value,
// holds more after it (a second object pasted after the first, the rest of a request
// cut and joined): that would be dropped unread. Space after it is not more.
func OneValue(dec *json.Decoder) error {
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("request body: more after its JSON value (at byte %d)", dec.InputOffset())
	}
	return nil
}
