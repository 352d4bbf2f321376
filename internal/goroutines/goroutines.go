// Package goroutines lists the stacks of the running goroutines, for tests that
// check what a component left running after it stopped, beside goleak's checks.
package goroutines

import (
	"runtime"
	"strings"
)

// Running returns the stacks of the goroutines whose stack names code matching
// substr (a package path or function), other than the tests' own: a stack that
// names a _test.go file is left out.
func Running(substr string) []string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, substr) && !strings.Contains(g, "_test.go") {
			out = append(out, g)
		}
	}
	return out
}
