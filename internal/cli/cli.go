// Package cli implements the switchyard command: `switchyard COMMAND [flags]`. It is
// the one home of the command line: every command is registered here (the table
// below and the init functions of this package's files), the larger command groups
// live in subpackages (regtool: merchants and terminals, keytool: keys, ruletool:
// rules, hsmtool: HSM diagnostics), and all are built with one toolkit, package kit
// (exit codes, usage errors, help, output formats, connection flags), and call the
// admin API through one client, package apiclient. Each command is a function from
// arguments to an exit code, writing to the given streams, so that tests run them
// in-process.
//
// Help never acts: "-h" anywhere on a command line prints usage to stdout and exits
// 0 before any connection is opened (see Main).
package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"
	"sort"
	"strings"

	"github.com/rs/zerolog"

	"github.com/switchyard/switchyard/internal/cli/kit"
)

// Version is set at build time with -ldflags "-X .../internal/cli.Version=v1.2.3".
var Version = "dev"

// Env is what a command runs with.
type Env struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	Getenv         func(string) string
	// Ctx ends when the command should stop (SIGINT/SIGTERM for serve).
	Ctx context.Context
}

type command struct {
	summary string
	run     func(env *Env, args []string) int
	// usage, when set, is printed for -h anywhere on the line instead of running the
	// command: for commands whose subcommands would otherwise call the API or read
	// -h as an argument. Without it the command's own flag sets answer -h.
	usage string
	// subs are the subcommands (for the help test, which walks them all).
	subs []string
}

var commands = map[string]command{}

func init() {
	Register("serve", "run the switch (--demo for the embedded demo fleet)", runServe)
	Register("issuer-sim", "run a standalone issuer simulator", runIssuerSim)
	registerTool("term", "send one transaction as a terminal and print the answer", "", termKinds, runTerm)
	Register("journal", "query the transaction journal", runJournal)
	Register("version", "print the version", runVersion)
}

// Register adds a command whose flag sets answer -h themselves.
func Register(name, summary string, run func(env *Env, args []string) int) {
	commands[name] = command{summary: summary, run: run}
}

// registerTool adds a command with subcommands subs; usage (if not empty) is its help
// text, printed for -h at any level without running the command.
func registerTool(name, summary, usage string, subs []string, run func(env *Env, args []string) int) {
	commands[name] = command{summary: summary, run: run, usage: usage, subs: subs}
}

// Main runs the command named by args[0] and returns the exit code.
func Main(env *Env, args []string) int {
	if env.Getenv == nil {
		env.Getenv = os.Getenv
	}
	if env.Ctx == nil {
		env.Ctx = context.Background()
	}
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(env.Stdout)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	c, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(env.Stderr, "switchyard: unknown command %q\n\n", args[0])
		usage(env.Stderr)
		return 2
	}
	if kit.WantsHelp(args[1:]) {
		if c.usage != "" {
			// A subcommand's help is its own lines of the group's page, when the
			// page has them.
			if len(args) > 1 && !strings.HasPrefix(args[1], "-") {
				if u := kit.SubUsage(c.usage, args[0]+" "+args[1]); u != "" {
					fmt.Fprintf(env.Stdout, "Usage:\n%s\n(switchyard %s -h: every %s command, and the connection flags)\n", u, args[0], args[0])
					return kit.ExitOK
				}
			}
			fmt.Fprint(env.Stdout, strings.TrimRight(c.usage, "\n")+"\n")
			return kit.ExitOK
		}
		// The command's flag set prints its usage to Stderr: help goes to stdout.
		help := *env
		help.Stderr = env.Stdout
		return c.run(&help, args[1:])
	}
	return c.run(env, args[1:])
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "Switchyard: an ISO 8583 acquiring switch with a built-in risk engine.\n\nUsage: switchyard COMMAND [flags]\n\nCommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-12s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(w, "\nRun 'switchyard COMMAND -h' for the flags of a command.")
}

func newFlags(env *Env, name, args string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	fs.Usage = func() {
		fmt.Fprintf(env.Stderr, "Usage: switchyard %s %s\n\nFlags:\n", name, args)
		fs.PrintDefaults()
	}
	return fs
}

// parseFlagsOnly is parse for a command that takes no positional argument: one is a
// usage error, so that a stray word before -h ("journal x -h") does not run the
// command (the flag package stops at the first word, and would never see the -h).
func parseFlagsOnly(env *Env, fs *flag.FlagSet, args []string) (bool, int) {
	if ok, code := parse(fs, args); !ok {
		return ok, code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(env.Stderr, "switchyard %s: unexpected argument %q (flags only; switchyard %s -h)\n", fs.Name(), fs.Arg(0), fs.Name())
		return false, kit.ExitUsage
	}
	return true, 0
}

// parse parses flags; it returns false (and the exit code to use) on error or -h.
func parse(fs *flag.FlagSet, args []string) (bool, int) {
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return false, kit.ExitOK
		}
		return false, kit.ExitUsage
	}
	return true, 0
}

// fail reports a failure on stderr and returns kit.ExitError (1), or kit.ExitUsage
// (2) when one of args is a bad command line (kit.Usagef: a --admin that is no
// URL, a connection flag without its value).
func fail(env *Env, format string, args ...any) int {
	// An error can quote what others wrote (the admin API's answer, a file's
	// line): its control characters are shown as escapes, its lines kept.
	fmt.Fprintln(env.Stderr, "switchyard: "+kit.ForTerminalLines(fmt.Sprintf(format, args...)))
	for _, a := range args {
		if err, ok := a.(error); ok && kit.IsUsage(err) {
			return kit.ExitUsage
		}
	}
	return kit.ExitError
}

// failUsage reports a bad command line as fail does and returns kit.ExitUsage (2).
func failUsage(env *Env, format string, args ...any) int {
	fail(env, format, args...)
	return kit.ExitUsage
}

func runVersion(env *Env, args []string) int {
	fs := newFlags(env, "version", "")
	if ok, code := parseFlagsOnly(env, fs, args); !ok {
		return code
	}
	rev := ""
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				rev = " " + s.Value
			}
		}
	}
	fmt.Fprintf(env.Stdout, "switchyard %s%s (%s %s/%s)\n", Version, rev, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return 0
}

// newLogger returns the process logger: JSON lines, or a console format for people.
func newLogger(w io.Writer, level, format string) zerolog.Logger {
	lvl, err := zerolog.ParseLevel(strings.ToLower(level))
	if err != nil {
		lvl = zerolog.InfoLevel
	}
	if format == "console" {
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: "15:04:05.000"}
	}
	zerolog.TimeFieldFormat = zerolog.TimeFormatUnixMicro
	zerolog.SetGlobalLevel(lvl) // a reload may change it
	return zerolog.New(w).With().Timestamp().Logger()
}

// repeated is a flag that may be given more than once (flag.Value); it keeps every
// value in order.
type repeated []string

// String implements flag.Value.
func (r *repeated) String() string { return strings.Join(*r, " ") }

// Set implements flag.Value.
func (r *repeated) Set(v string) error {
	*r = append(*r, v)
	return nil
}
