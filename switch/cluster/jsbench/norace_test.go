//go:build !race

package jsbench

// raceEnabled: see race_test.go.
const raceEnabled = false
