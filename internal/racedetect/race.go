//go:build race

package racedetect

// Enabled is true: built with -race.
const Enabled = true
