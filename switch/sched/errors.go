package sched

import "errors"

// Errors of the scheduler's operations (the admin API maps them to 404 and 409).
var (
	ErrNotFound = errors.New("not found")
	ErrBusy     = errors.New("busy")
)
