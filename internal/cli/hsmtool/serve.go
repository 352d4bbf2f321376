package hsmtool

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/rs/zerolog"

	"github.com/switchyard/switchyard/hsm/payshield"
	"github.com/switchyard/switchyard/internal/boundfile"
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
	demo := fs.Bool("demo", false, "use the public demo LMK, or with --lmk-scheme variant the published Thales test LMK (demo and tests only)")
	scheme := fs.String("lmk-scheme", payshield.LMKKeyBlock, "keyblock (an AES-256 key-block LMK: S tokens) or variant (20 DES LMK pairs: U/T tokens)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	log := zerolog.New(stderr).With().Timestamp().Str("component", "hsm-serve").Logger()
	opts := payshield.ServerOptions{HeaderLength: *hl, Logger: log}
	var srv *payshield.Server
	switch *scheme {
	case payshield.LMKKeyBlock:
		lmk, err := keys.LoadLMK(keys.LMKSource{File: *lmkFile, Env: *lmkEnv, Demo: *demo})
		if err != nil {
			return err
		}
		srv, err = payshield.NewServer(lmk, opts)
		clear(lmk)
		if err != nil {
			return err
		}
	case payshield.LMKVariant:
		pairs, err := loadVariantLMK(*lmkFile, *lmkEnv, *demo)
		if err != nil {
			return err
		}
		srv, err = payshield.NewVariantServer(pairs, opts)
		for _, p := range pairs {
			clear(p)
		}
		if err != nil {
			return err
		}
	default:
		return usagef("--lmk-scheme %q: want keyblock or variant", *scheme)
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", *addr, err)
	}
	fmt.Fprintf(stdout, "listening on %s\n", ln.Addr())
	return srv.Serve(ctx, ln)
}

// loadVariantLMK returns the 20 pairs of a variant LMK: with demo the published
// Thales test LMK, else 20 pairs of 32 hex digits (separated by white space) from a
// file of mode 600 (a regular file of at most boundfile.MaxSecretBytes) or an
// environment variable. The test LMK is refused outside demo.
func loadVariantLMK(file, env string, demo bool) ([20][]byte, error) {
	var text string
	switch {
	case file != "":
		fi, err := os.Stat(file)
		if err != nil {
			return [20][]byte{}, fmt.Errorf("variant LMK file: %w", err)
		}
		if fi.Mode().Perm()&0o077 != 0 {
			return [20][]byte{}, fmt.Errorf("variant LMK file %s has permissions %04o: it must not be accessible by group or others (chmod 600 %s)", file, fi.Mode().Perm(), file)
		}
		raw, err := boundfile.Read(file, boundfile.MaxSecretBytes)
		if err != nil {
			return [20][]byte{}, fmt.Errorf("variant LMK file: %w", err)
		}
		text = string(raw)
		clear(raw)
	case env != "":
		text = os.Getenv(env)
		if strings.TrimSpace(text) == "" {
			return [20][]byte{}, fmt.Errorf("variant LMK: environment variable %s is not set", env)
		}
	case demo:
		return payshield.ParseVariantLMK(payshield.TestLMK)
	default:
		return [20][]byte{}, fmt.Errorf("variant LMK: none given: name a file or environment variable (20 pairs of 32 hex digits), or --demo for the Thales test LMK")
	}
	f := strings.Fields(strings.ToUpper(text))
	if len(f) != 20 {
		return [20][]byte{}, fmt.Errorf("variant LMK: %d pairs, want 20 (00-01 to 38-39, 32 hex digits each)", len(f))
	}
	if [20]string(f) == payshield.TestLMK {
		return [20][]byte{}, fmt.Errorf("variant LMK: it is the published Thales test LMK; refusing outside --demo")
	}
	return payshield.ParseVariantLMK([20]string(f))
}
