//go:build race

package state

// raceEnabled: see norace_test.go.
const raceEnabled = true
