package caddymodule

import (
	"context"
	"fmt"

	"github.com/a8e2c47e/switchback/configstore"
	"github.com/a8e2c47e/switchback/control"
)

// newControl builds the app's control plane writer (package control): the
// rollout driver, the guard's fallback writer and the events log, writing
// as this instance. Its writes are applied here at once, and its events
// counted in the app's metrics.
func (a *App) newControl() (*control.Control, error) {
	opts := control.Options{
		Store:     a.store,
		Instance:  a.Instance,
		Now:       a.now,
		Logger:    a.logger,
		Reachable: a.healthy.Load,
		Recorded: func(ev configstore.Event) {
			a.metrics.events.WithLabelValues(ev.Deployment, ev.Kind).Inc()
		},
		Wrote:     a.apply,
		GuardView: a.guardView,
	}
	// Schemas only when a database is configured: with Schemas set, every
	// traffic change asks the compatibility gate, which reads the store.
	if len(a.dbs.Names()) > 0 {
		opts.Schemas = a.dbs
	}
	c, err := control.New(opts)
	if err != nil {
		return nil, fmt.Errorf("switchback: %w", err)
	}
	return c, nil
}

// runRollouts drives the deployments' rollouts while this instance is the
// elected driver (control.Run); it returns when ctx ends.
func (a *App) runRollouts(ctx context.Context) { a.control.Run(ctx) }
