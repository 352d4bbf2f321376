// Command switchyard is the Switchyard acquiring switch and its tools.
package main

import (
	"os"

	"github.com/switchyard/switchyard/internal/cli"
)

func main() {
	os.Exit(cli.Main(&cli.Env{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr}, os.Args[1:]))
}
