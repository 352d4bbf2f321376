// Package e2e holds the end-to-end tests of the switch: a real switch on loopback with a
// real Badger in a temporary directory, driven by terminals over TCP and by the
// command-line tools, as operators and terminals use it.
package e2e
