// Package alerts holds no code: its tests check the Prometheus rules that ship with
// the switch, docs/alerts/switchyard.rules.yml (docs/alerts.md explains each alert).
//
// They prove that the file parses and validates as Prometheus rules (rulefmt, the
// code `promtool check rules` runs), that every metric and label a rule names is one
// the switch exports (a demo switch's /metrics, and the collectors a cluster node or
// a payShield HSM adds), that every alert has a severity, a summary, a description and
// a runbook section in docs/alerts.md, and that the unit tests of
// docs/alerts/switchyard.rules.test.yml (promtool's format) pass: each alert fires on
// its bad series and stays silent on the good ones.
//
// The Prometheus module (github.com/prometheus/prometheus) is imported by these tests
// only, never by the switch's binary; see docs/alerts.md, "The Prometheus dependency".
package alerts
