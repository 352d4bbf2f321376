// Package jsbench holds measurements of NATS JetStream (embedded
// nats-server v2.15.2, nats.go's jetstream API) for the choices issue 14
// leaves open: how the journal publishes (synchronous or in groups), how
// duplicates are detected cluster-wide, how velocity counters are shared and
// what KV reads, compare-and-set writes and watches cost. It has no code of
// its own outside its tests: the benchmarks start one or three servers in the
// test process on loopback, with file storage in temporary directories.
//
// Run them with
//
//	go test -run '^$' -bench . ./switch/cluster/jsbench/
//
// A plain `go test` only runs TestSmoke, which starts a three-node cluster
// and uses every helper once. The results and what they decided are in
// docs/cluster-measurements.md.
package jsbench
