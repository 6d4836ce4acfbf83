package caddymodule

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/a8e2c47e/switchback/admin"
	"github.com/a8e2c47e/switchback/console"
)

// startAdmin serves the admin API, and the console at /ui/. The listener comes from Caddy's listener
// pool, so the new config's app can bind the address while the old one
// still holds it during a reload.
func (a *App) startAdmin() error {
	if a.Admin == "off" {
		return nil
	}
	srv, err := admin.New(admin.Options{
		Store:    a.store,
		Instance: a.Instance,
		Live: func(name string) (uint64, bool) {
			dep, ok := LookupDeployment(name)
			if !ok || dep.Snapshot() == nil {
				return 0, false
			}
			return dep.Snapshot().Version(), true
		},
		StoreHealth: func() (bool, error) {
			if a.healthy.Load() {
				return true, nil
			}
			return false, errors.New("store unreachable; serving the last applied versions")
		},
		Guard:        a.guardView,
		Control:      a.control,
		Measured:     a.measured,
		Databases:    a.dbs,
		Affected:     a.affectedLog,
		Tokens:       a.AdminTokens,
		AllowedHosts: a.AdminHosts,
		Registry:     a.ctx.GetMetricsRegistry(),
		Logger:       a.logger.Named("admin"),
	})
	if err != nil {
		return fmt.Errorf("switchback admin: %w", err)
	}
	ui, err := console.New(console.Options{API: srv, Logger: a.logger.Named("console")})
	if err != nil {
		return fmt.Errorf("switchback admin: %w", err)
	}
	srv.Mount(console.Prefix, ui)

	na, err := caddy.ParseNetworkAddress(a.Admin)
	if err != nil {
		return fmt.Errorf("switchback admin %q: %w", a.Admin, err)
	}
	lnAny, err := na.Listen(a.ctx, 0, net.ListenConfig{})
	if err != nil {
		return fmt.Errorf("switchback admin %q: %w", a.Admin, err)
	}
	a.adminLn = lnAny.(net.Listener)
	a.adminURL = cmp.Or(a.AdminURL, advertisedAdmin(a.adminLn.Addr()))
	base, cancelStreams := context.WithCancel(context.Background())
	a.cancelStreams = cancelStreams
	a.admin = &http.Server{
		Handler: srv,
		// Requests (the events stream above all) end when the API stops,
		// so a reload never waits on an open follower.
		BaseContext:       func(net.Listener) context.Context { return base },
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		// No WriteTimeout: the events stream stays open.
	}
	go func() {
		if err := a.admin.Serve(a.adminLn); err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
			a.logger.Error("admin API stopped", zap.Error(err))
		}
	}()
	a.logger.Info("admin API listening", zap.String("address", a.adminLn.Addr().String()), zap.Bool("tokens", a.AdminTokens != ""))
	return nil
}

func (a *App) stopAdmin() error {
	if a.admin == nil {
		return nil
	}
	a.cancelStreams()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := a.admin.Shutdown(ctx)
	if errors.Is(err, context.DeadlineExceeded) {
		err = a.admin.Close()
	}
	return err
}
