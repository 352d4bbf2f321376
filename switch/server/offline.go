package server

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"time"

	"github.com/rs/zerolog"

	"github.com/switchyard/switchyard/hsm"
	"github.com/switchyard/switchyard/keys"
	"github.com/switchyard/switchyard/risk"
	"github.com/switchyard/switchyard/risk/profile"
	"github.com/switchyard/switchyard/switch/admin"
	"github.com/switchyard/switchyard/switch/api"
	"github.com/switchyard/switchyard/switch/apps"
	"github.com/switchyard/switchyard/switch/cases"
	"github.com/switchyard/switchyard/switch/journal"
	"github.com/switchyard/switchyard/switch/listreview"
	"github.com/switchyard/switchyard/switch/registry"
)

// OfflineToken is the bearer token of the in-process admin API that tools use with
// --data DIR (a stopped switch's data directory).
const OfflineToken = "offline"

// Offline is the admin API over a stopped switch's data directory, for the command-line
// tools' --data mode. Every call acts as actor, with the admin role.
type Offline struct {
	Handler http.Handler
	Journal *journal.Store
	close   []func() error
}

// OpenOffline opens dir (which no running switch may hold) and serves the admin API on
// it in-process.
//
// The key API is served too when the LMK can be had: from lmk (a file or an
// environment variable), or for a demo data directory the public demo LMK.
func OpenOffline(dir, actor, tz string, lmk keys.LMKSource) (*Offline, error) {
	db, err := OpenDB(dir, zerolog.Nop())
	if err != nil {
		return nil, err
	}
	o := &Offline{close: []func() error{db.Close}}
	reg, err := registry.New(db, nil, registry.Options{Logger: zerolog.Nop()})
	if err != nil {
		o.Close()
		return nil, fmt.Errorf("registry: %w", err)
	}
	o.close = append([]func() error{reg.Close}, o.close...)
	j, err := journal.Open(db, journal.Options{Dir: JournalDir(dir)})
	if err != nil {
		o.Close()
		return nil, err
	}
	o.Journal = j
	o.close = append([]func() error{j.Close}, o.close...)
	auth, err := admin.NewAuthenticator([]admin.Token{{Token: OfflineToken, Principal: admin.Principal{Name: actor, Role: admin.RoleAdmin}}})
	if err != nil {
		o.Close()
		return nil, err
	}
	opts := api.Options{Auth: auth, Registry: reg, Journal: j,
		Settle: func(ctx context.Context, date string) (any, error) {
			loc, err := time.LoadLocation(tz)
			if err != nil {
				return nil, err
			}
			return Settle(ctx, j, settlementDate(date, time.Now(), loc), loc)
		}}
	// GET /api/v1/info reports the zone the tools read dates in (the data directory
	// does not record its switch's).
	if loc, err := time.LoadLocation(tz); err == nil {
		opts.Location = loc
	}
	demo := lmk.File == "" && lmk.Env == ""
	lmk.Demo = demo
	if key, err := keys.LoadLMK(lmk); err == nil {
		store, err := keys.NewStore(db, keys.Options{Demo: demo})
		if err != nil {
			o.Close()
			return nil, err
		}
		h, err := hsm.NewSoftware(context.Background(), store, key, hsm.Options{})
		clear(key)
		if err != nil {
			o.Close()
			return nil, err
		}
		opts.Keys, opts.HSM = store, h
	}
	lists, err := risk.NewLists(db)
	if err != nil {
		o.Close()
		return nil, err
	}
	opts.Lists = lists
	opts.ListReview = listreview.New(reg, lists, listreview.Options{})
	cs, err := cases.New(db, cases.Options{Lists: lists, Registry: reg})
	if err != nil {
		o.Close()
		return nil, err
	}
	o.close = append([]func() error{cs.Close}, o.close...)
	opts.Cases = cs
	// The profiles as the switch last computed them (tier defaults if never or if
	// the copy is damaged, which the switch recomputes at its start): the offline
	// mode does not recompute them (no refresh route).
	opts.Profiles = profile.NewSet(nil)
	_ = (&profileRefresher{set: opts.Profiles, path: ProfilesFile(dir)}).load()
	// The applications' packages, groups and rollout as last reported (read-only:
	// the --data mode refuses every change). Without the configuration there is no
	// card hash key to open the download token key with, nor a terminal to offer
	// an update to: the token key is left as it is.
	if opts.Apps, err = apps.New(db, reg, apps.Options{Dir: filepath.Join(dir, "apps"), NoTokens: true}); err != nil {
		o.Close()
		return nil, err
	}
	o.Handler = api.New(opts)
	return o, nil
}

// Close closes what OpenOffline opened.
func (o *Offline) Close() error {
	var first error
	for _, f := range o.close {
		if err := f(); err != nil && first == nil {
			first = err
		}
	}
	return first
}
