//go:build race

package e2e

// raceEnabled: the tests run under the race detector, and so does the switchyard
// binary the subprocess tests build (a race there fails its graceful stop: exit 66).
const raceEnabled = true
