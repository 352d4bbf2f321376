// Package racedetect reports whether the binary was built with the race detector
// (go build -race, go test -race): tests that measure the heap, run a long
// computation on one goroutine, or meet a race of a dependency's own decide by it
// what they run.
package racedetect

// SkipLong is the reason a test skips under -race when it runs a long computation
// on one goroutine, where the detector has nothing to find and makes it some ten
// times slower: `make test` runs such tests again without the detector (its
// NORACE_TESTS).
const SkipLong = "a long computation on one goroutine, some ten times slower under -race: make test runs it without the detector"
