package ruletool

import (
	"errors"
	"io/fs"
	"os"

	"github.com/switchyard/switchyard/risk"
	"github.com/switchyard/switchyard/risk/rating"
)

// RatingPolicyFile is where a rules directory keeps the merchant rating policy.
func RatingPolicyFile(rulesDir string) string { return rating.PolicyFile(rulesDir) }

// ratingPolicyTests runs the rating policy's tests when the rules directory has a
// policy (rule "rating-policy" in the results); none when it has not.
func ratingPolicyTests(dir string) ([]risk.TestResult, error) {
	path := RatingPolicyFile(dir)
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	p, err := rating.LoadPolicy(path)
	if err != nil {
		return nil, err
	}
	var out []risk.TestResult
	for _, r := range p.RunTests() {
		out = append(out, risk.TestResult{Rule: "rating-policy", Case: r.Name, File: path, Line: r.Line, Passed: r.Passed, Failure: r.Failure})
	}
	return out, nil
}

// ratingPolicyCount loads the rating policy of a rules directory, when it has
// one, and returns how many tests it holds.
func ratingPolicyCount(dir string) (int, error) {
	path := RatingPolicyFile(dir)
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	p, err := rating.LoadPolicy(path)
	if err != nil {
		return 0, err
	}
	return len(p.Tests), nil
}
