//go:build !race

package racedetect

// Enabled is false: built without -race.
const Enabled = false
