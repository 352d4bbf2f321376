// Package admin holds what every part of the admin HTTP API shares: bearer-token
// authentication with roles, JSON request and response helpers, and a client that
// the command-line tools use to talk to a running switch (or to an in-process
// handler when they work on a data directory directly).
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
	"net/http/httptest"
	"strings"
	"sync"
	"time"
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
}

// NewAuthenticator returns an Authenticator for the given tokens. It refuses an
// empty token, an unknown role or a token given twice.
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

// Require wraps h so that it runs only for a caller whose bearer token maps to one of
// roles (RoleAdmin is always allowed): no or unknown token gives 401, another role 403.
func (a *Authenticator) Require(h http.Handler, roles ...Role) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth := r.Header.Get("Authorization")
		token, found := strings.CutPrefix(auth, "Bearer ")
		if !found {
			WriteError(w, http.StatusUnauthorized, errors.New("missing bearer token"))
			return
		}
		p, ok := a.Lookup(strings.TrimSpace(token))
		if !ok {
			WriteError(w, http.StatusUnauthorized, errors.New("unknown bearer token"))
			return
		}
		allowed := p.Role == RoleAdmin
		for _, role := range roles {
			if p.Role == role {
				allowed = true
			}
		}
		if !allowed {
			WriteError(w, http.StatusForbidden, fmt.Errorf("role %s may not %s %s", p.Role, r.Method, r.URL.Path))
			return
		}
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

// WriteError writes err as a JSON error answer with the given status.
func WriteError(w http.ResponseWriter, status int, err error) {
	WriteJSON(w, status, ErrorBody{Error: err.Error()})
}

// ReadJSON decodes the request body into v, refusing unknown fields and bodies over 8 MiB.
func ReadJSON(r *http.Request, v any) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, 8<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("request body: %w", err)
	}
	return nil
}

// APIError is an error answer from the admin API.
type APIError struct {
	Status  int
	Message string
}

func (e *APIError) Error() string { return fmt.Sprintf("admin API: %d %s", e.Status, e.Message) }

// Client calls the admin API, over HTTP or directly on an in-process handler.
type Client struct {
	// BaseURL is like "http://127.0.0.1:8080"; ignored when Handler is set.
	BaseURL string
	// Token is sent as a bearer token.
	Token string
	// Handler, when set, serves the calls in-process (the tools' --data mode).
	Handler http.Handler
	// HTTP is the client for remote calls; nil means a client with a 30 s timeout.
	HTTP *http.Client
}

// Do sends in (if not nil) as JSON with method to path and decodes the answer into
// out (if not nil). An answer with a status of 400 or above becomes an *APIError.
func (c *Client) Do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encode request to %s: %w", path, err)
		}
		body = bytes.NewReader(b)
	}
	resp, err := c.roundTrip(ctx, method, path, body, in != nil, 30*time.Second)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("admin API %s %s: decode answer: %w", method, path, err)
	}
	return nil
}

// Stream GETs path, whose answer is JSON lines, and calls fn with each line.
func (c *Client) Stream(ctx context.Context, path string, fn func(line json.RawMessage) error) error {
	resp, err := c.roundTrip(ctx, http.MethodGet, path, nil, false, 0) // a stream may take long
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	dec := json.NewDecoder(resp.Body)
	for dec.More() {
		var line json.RawMessage
		if err := dec.Decode(&line); err != nil {
			return fmt.Errorf("admin API GET %s: %w", path, err)
		}
		if err := fn(line); err != nil {
			return err
		}
	}
	return nil
}

// roundTrip sends a request, over HTTP or to the in-process handler, and turns an
// answer with a status of 400 or above into an *APIError. timeout 0 means none.
func (c *Client) roundTrip(ctx context.Context, method, path string, body io.Reader, isJSON bool, timeout time.Duration) (*http.Response, error) {
	base := c.BaseURL
	if c.Handler != nil {
		base = "http://in-process"
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(base, "/")+path, body)
	if err != nil {
		return nil, fmt.Errorf("admin API request %s %s: %w", method, path, err)
	}
	if isJSON {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	var resp *http.Response
	if c.Handler != nil {
		rec := httptest.NewRecorder()
		c.Handler.ServeHTTP(rec, req)
		resp = rec.Result()
	} else {
		hc := c.HTTP
		if hc == nil {
			hc = &http.Client{Timeout: timeout}
		}
		if resp, err = hc.Do(req); err != nil {
			return nil, fmt.Errorf("admin API %s %s: %w (is the switch running, and is --admin right?)", method, path, err)
		}
	}
	if resp.StatusCode >= 400 {
		defer resp.Body.Close()
		var eb ErrorBody
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		if json.Unmarshal(raw, &eb) != nil || eb.Error == "" {
			eb.Error = strings.TrimSpace(string(raw))
		}
		return nil, &APIError{Status: resp.StatusCode, Message: eb.Error}
	}
	return resp, nil
}
