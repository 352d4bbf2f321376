//go:build !unix

package server

// restrictUmask does nothing where there is no umask; restrictDataDir still tightens
// the files present when the database opens.
func restrictUmask() {}
