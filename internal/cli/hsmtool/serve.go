package hsmtool

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/rs/zerolog"

	"github.com/switchyard/switchyard/hsm/payshield"
	"github.com/switchyard/switchyard/keys"
)

// runServe is `switchyard hsm serve`: the software HSM behind the payShield host
// protocol, until SIGINT or SIGTERM.
func runServe(args []string, stdout, stderr io.Writer) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return serve(ctx, args, stdout, stderr)
}

// serve runs hsm serve until ctx is done. It prints "listening on ADDR" once it
// accepts connections.
func serve(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("serve", stderr)
	addr := fs.String("addr", "127.0.0.1:1500", "listen address (host:port; port 0 picks one)")
	hl := fs.Int("header-length", payshield.DefaultHeaderLength, "message header length the clients use")
	lmkFile := fs.String("lmk-file", "", "the LMK (AES-256, 64 hex digits) in a file of mode 600")
	lmkEnv := fs.String("lmk-env", "", "the name of an environment variable holding the LMK")
	demo := fs.Bool("demo", false, "use the public demo LMK (demo and tests only)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	lmk, err := keys.LoadLMK(keys.LMKSource{File: *lmkFile, Env: *lmkEnv, Demo: *demo})
	if err != nil {
		return err
	}
	log := zerolog.New(stderr).With().Timestamp().Str("component", "hsm-serve").Logger()
	srv, err := payshield.NewServer(lmk, payshield.ServerOptions{HeaderLength: *hl, Logger: log})
	clear(lmk)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", *addr, err)
	}
	fmt.Fprintf(stdout, "listening on %s\n", ln.Addr())
	return srv.Serve(ctx, ln)
}
