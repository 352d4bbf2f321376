//go:build race

package risk

// raceEnabled: the tests run under the race detector, which makes the long sequential
// simulations (TestBenchScenarios: about 280,000 evaluations) ten times slower for no
// gain, since they run on one goroutine. They take their testing.Short() size then;
// the run without -race (`make test RACE=`) keeps the full size.
const raceEnabled = true
