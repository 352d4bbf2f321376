// Package apiclient is the client of the admin HTTP API that the switchyard commands
// use: it talks to a running switch over HTTP, or to an in-process handler when a
// command works on a stopped switch's data directory (--data). It lives with the
// commands so that the library packages, which serve the API, do not carry it.
package apiclient

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/switchyard/switchyard/switch/admin"
)

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
	return c.DoWithin(ctx, method, path, in, out, 30*time.Second)
}

// DoWithin is Do with a timeout of its own instead of 30 s (0: none; bound it with
// ctx), for the calls that take long by design (an import paced by the cluster).
func (c *Client) DoWithin(ctx context.Context, method, path string, in, out any, timeout time.Duration) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encode request to %s: %w", path, err)
		}
		body = bytes.NewReader(b)
	}
	resp, err := c.roundTrip(ctx, method, path, body, in != nil, timeout)
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
		var eb admin.ErrorBody
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		if json.Unmarshal(raw, &eb) != nil || eb.Error == "" {
			eb.Error = strings.TrimSpace(string(raw))
		}
		if resp.StatusCode == http.StatusUnauthorized && c.Token == "" && c.Handler == nil {
			// The commands take the token from --token or $SWITCHYARD_TOKEN: an
			// operator in a new shell has neither, and "missing bearer token"
			// alone does not say where it goes.
			eb.Error += " (no token given: --token T or export SWITCHYARD_TOKEN=T)"
		}
		return nil, &APIError{Status: resp.StatusCode, Message: eb.Error}
	}
	return resp, nil
}

// Send sends the raw body with method to path and decodes the JSON answer into out
// (if not nil): for the calls whose body is not JSON (a package upload). It has no
// timeout of its own: bound it with ctx.
func (c *Client) Send(ctx context.Context, method, path string, body io.Reader, out any) error {
	resp, err := c.roundTrip(ctx, method, path, body, false, 0)
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
