// Package kvsynctest wraps a statelog.Log for the cluster tests of the stores: it
// records the commits a node appended (or submitted), reports its conflicts, runs a
// hook before each append or submission, and can make them report ErrUnavailable.
package kvsynctest

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/switchyard/switchyard/internal/statelog"
)

// Log is one node's view of a shared statelog.Log (a *statelog.Memory in tests).
type Log struct {
	Inner statelog.Log
	// Before, when set, runs before the n-th Append or Submit (1, 2, ...), without
	// the lock.
	Before func(n int)
	// Conflicts receives a value (without blocking; it is buffered) after each
	// Append that conflicted, once the error is returned.
	Conflicts chan error

	mu      sync.Mutex
	n       int
	unknown bool
	commits []statelog.Commit
}

// New wraps inner.
func New(inner statelog.Log) *Log {
	return &Log{Inner: inner, Conflicts: make(chan error, 16)}
}

// SetUnknown makes each Append pass the commit on (so that it is ordered) but
// report ErrUnavailable, as when the acknowledgement is lost.
func (l *Log) SetUnknown(on bool) {
	l.mu.Lock()
	l.unknown = on
	l.mu.Unlock()
}

// Commits returns the commits this node appended or submitted (ordered or not).
func (l *Log) Commits() []statelog.Commit {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]statelog.Commit(nil), l.commits...)
}

// note counts and keeps c, calls Before, and says whether its acknowledgement is to
// be lost.
func (l *Log) note(c statelog.Commit) (unknown bool) {
	l.mu.Lock()
	l.n++
	n, unknown := l.n, l.unknown
	l.commits = append(l.commits, c)
	l.mu.Unlock()
	if l.Before != nil {
		l.Before(n)
	}
	return unknown
}

// Append implements statelog.Log.
func (l *Log) Append(ctx context.Context, c statelog.Commit, after uint64) (uint64, error) {
	unknown := l.note(c)
	rev, err := l.Inner.Append(ctx, c, after)
	if errors.Is(err, statelog.ErrConflict) {
		defer func() { l.Conflicts <- err }()
	}
	if err == nil && unknown {
		return 0, fmt.Errorf("test: revision %d not acknowledged: %w", rev, statelog.ErrUnavailable)
	}
	return rev, err
}

// Submit implements statelog.Submitter (Inner must be one): as Append, without the
// compare-and-set.
func (l *Log) Submit(ctx context.Context, c statelog.Commit, seen uint64) (uint64, error) {
	inner, ok := l.Inner.(statelog.Submitter)
	if !ok {
		return 0, fmt.Errorf("test: %T is not a statelog.Submitter", l.Inner)
	}
	unknown := l.note(c)
	rev, err := inner.Submit(ctx, c, seen)
	if err == nil && unknown {
		return 0, fmt.Errorf("test: revision %d not acknowledged: %w", rev, statelog.ErrUnavailable)
	}
	return rev, err
}

// Await implements statelog.Submitter through Inner.
func (l *Log) Await(ctx context.Context, r statelog.Replica, rev uint64) error {
	inner, ok := l.Inner.(statelog.Submitter)
	if !ok {
		return fmt.Errorf("test: %T is not a statelog.Submitter", l.Inner)
	}
	return inner.Await(ctx, r, rev)
}
