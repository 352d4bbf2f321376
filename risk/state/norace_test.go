//go:build !race

package state

// raceEnabled reports whether the race detector is on (it changes the heap the
// memory tests measure).
const raceEnabled = false
