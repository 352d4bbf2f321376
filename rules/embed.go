// Package rules is the default rule pack, built into the binary so that a switch
// started away from a checkout (serve --demo in any directory) still has its rules.
// The YAML files beside this one are the pack; analysts edit them, `switchyard rules
// test rules` tests them, and the switch reads them from its rules_dir when that
// directory exists. Only when it does not does the switch fall back to this copy.
package rules

import "embed"

// Files holds the default rule pack's *.yaml files, at the root of the file system.
//
//go:embed *.yaml
var Files embed.FS

// RatingPolicy is the default merchant rating policy, rating/policy.yaml.
//
//go:embed rating/policy.yaml
var RatingPolicy []byte
