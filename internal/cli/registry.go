package cli

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/user"
	"path/filepath"

	"github.com/switchyard/switchyard/hsm"
	"github.com/switchyard/switchyard/internal/cli/apiclient"
	"github.com/switchyard/switchyard/internal/cli/kit"
	"github.com/switchyard/switchyard/internal/cli/regtool"
	"github.com/switchyard/switchyard/keys"
	"github.com/switchyard/switchyard/switch/admin"
	"github.com/switchyard/switchyard/switch/config"
	"github.com/switchyard/switchyard/switch/server"
)

var registrySummaries = map[string]string{
	"merchant":   "register, change, freeze, unfreeze, close merchants (two-person review)",
	"terminal":   "register, change, suspend, resume, close terminals; import CSV",
	"change":     "list, approve or reject requested lifecycle changes",
	"oplog":      "read and verify the operation log",
	"incident":   "list, acknowledge and resolve binding and integrity incidents",
	"alert":      "list and acknowledge offline-terminal alerts",
	"alert-rule": "list, set and delete offline alert rules",
}

func init() {
	for _, name := range regtool.Commands {
		registerTool(name, registrySummaries[name], regtool.Usage, regtool.Subcommands[name],
			func(env *Env, args []string) int { return runRegistry(env, name, args) })
	}
}

// adminClient returns a client of the admin API: the running switch's (--admin, --token
// or $SWITCHYARD_TOKEN), or with --data DIR an in-process API over a stopped switch's
// data directory, read-only, acting as $SWITCHYARD_ACTOR (default: the OS user), with
// the LMK from $SWITCHYARD_LMK_FILE or $SWITCHYARD_LMK (a demo data directory needs
// neither).
//
// Offline, nobody is authenticated: $SWITCHYARD_ACTOR is whatever name the caller
// types, so one person could request a change as alice and approve it as bob, and the
// oplog would show two. Changes (every method but GET and HEAD) therefore need the
// running switch and a token; see readOnly.
func adminClient(env *Env, args []string) (*apiclient.Client, []string, func(), error) {
	conn, rest, err := kit.ExtractConn(args, env.Getenv)
	if err != nil {
		return nil, nil, nil, err
	}
	if conn.DataDir == "" {
		return conn.Client(), rest, func() {}, nil
	}
	if err := existingDataDir(conn.DataDir); err != nil {
		return nil, nil, nil, err
	}
	actor := env.Getenv("SWITCHYARD_ACTOR")
	if actor == "" {
		if u, err := user.Current(); err == nil {
			actor = u.Username
		} else {
			actor = "local"
		}
	}
	tz := env.Getenv("SWITCHYARD_TIMEZONE")
	if tz == "" {
		tz = config.Demo().Timezone
	}
	lmk := keys.LMKSource{File: env.Getenv("SWITCHYARD_LMK_FILE")}
	if env.Getenv("SWITCHYARD_LMK") != "" {
		lmk.Env = "SWITCHYARD_LMK"
	}
	off, err := server.OpenOffline(conn.DataDir, actor, tz, lmk)
	if err != nil {
		if errors.Is(err, hsm.ErrKCVMismatch) && lmk.File == "" && lmk.Env == "" {
			return nil, nil, nil, fmt.Errorf("%s was written under an LMK, and none was given (only the demo LMK was tried): set $SWITCHYARD_LMK_FILE or $SWITCHYARD_LMK as for its switch (%w)", conn.DataDir, err)
		}
		return nil, nil, nil, err
	}
	return &apiclient.Client{Handler: readOnly(off.Handler), Token: server.OfflineToken}, rest, func() { _ = off.Close() }, nil
}

// readOnly passes GET and HEAD requests to h and refuses every other with 403: the
// --data mode may read, but a change needs an authenticated identity.
func readOnly(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			admin.WriteError(w, http.StatusForbidden, fmt.Errorf("%s %s: --data mode is read-only: a change needs an authenticated identity "+
				"(offline, $SWITCHYARD_ACTOR is any name one types); start the switch and use --admin URL --token T", r.Method, r.URL.Path))
			return
		}
		h.ServeHTTP(w, r)
	})
}

func runRegistry(env *Env, name string, args []string) int {
	c, rest, done, err := adminClient(env, args)
	if err != nil {
		return fail(env, "%s: %v", name, err)
	}
	defer done()
	loc, err := acquirerZone(env)
	if err != nil {
		return fail(env, "%s: %v", name, err)
	}
	return regtool.Run(env.Ctx, name, rest, c, loc, env.Stdout, env.Stderr)
}

// existingDataDir checks that --data names an existing directory that holds a
// switch's data (its Badger database). Opening a data directory creates it: a mistyped --data would read an empty journal and report
// nothing (a backtest of nothing, "No decision would change", a journal query with
// no records) and leave a new database behind.
func existingDataDir(dir string) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("--data %s: %w (the data directory of a stopped switch: its data_dir)", dir, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("--data %s: not a directory (the data directory of a stopped switch: its data_dir)", dir)
	}
	// Opening a directory that holds no switch's data would make one there (Badger's
	// files, the journal's log) and tighten every file's permissions under it (the
	// server's restrictDataDir): a --data . or --data /etc must touch nothing.
	if _, err := os.Stat(filepath.Join(dir, badgerManifest)); err != nil {
		return fmt.Errorf("--data %s: not a switch's data directory (it has no %s: %w); give the data_dir of a switch that has run", dir, badgerManifest, err)
	}
	return nil
}

// badgerManifest is the file Badger keeps in every database directory it made.
const badgerManifest = "MANIFEST"
