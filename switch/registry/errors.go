package registry

import (
	"errors"
	"fmt"
)

// Error kinds. Every error the registry returns for a refused request wraps one of
// these, so that callers (the admin API) can map them with errors.Is.
var (
	// ErrNotFound: the merchant, terminal, change, incident, alert or rule does not exist.
	ErrNotFound = errors.New("not found")
	// ErrInvalid: the request is malformed or a record fails validation.
	ErrInvalid = errors.New("invalid")
	// ErrConflict: the request does not fit the current state (a transition that is
	// not allowed, a change that is no longer pending, a record that already exists).
	ErrConflict = errors.New("conflict")
	// ErrForbidden: the principal may not do this, whatever its role (for example,
	// approve a change it requested itself).
	ErrForbidden = errors.New("forbidden")
	// ErrExpired: the change waited longer than its expiry (Options.ChangeTTL) and
	// may no longer be approved (the admin API answers 410).
	ErrExpired = errors.New("expired")
)

type kindError struct {
	kind error
	msg  string
}

// Error returns the message.
func (e *kindError) Error() string { return e.msg }

// Unwrap returns the error kind, for errors.Is.
func (e *kindError) Unwrap() error { return e.kind }

func invalidf(format string, args ...any) error {
	return &kindError{ErrInvalid, fmt.Sprintf(format, args...)}
}

func notFoundf(format string, args ...any) error {
	return &kindError{ErrNotFound, fmt.Sprintf(format, args...)}
}

func conflictf(format string, args ...any) error {
	return &kindError{ErrConflict, fmt.Sprintf(format, args...)}
}

func forbiddenf(format string, args ...any) error {
	return &kindError{ErrForbidden, fmt.Sprintf(format, args...)}
}

func expiredf(format string, args ...any) error {
	return &kindError{ErrExpired, fmt.Sprintf(format, args...)}
}
