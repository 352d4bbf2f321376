//go:build !unix

package server

// fdLimit is unknown here: the listeners' limits apply as configured.
func fdLimit() uint64 { return 0 }
