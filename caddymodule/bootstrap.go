package caddymodule

import (
	"context"
	"errors"
	"fmt"
	"os"

	"go.uber.org/zap"

	"github.com/a8e2c47e/switchback/configstore"
	"github.com/a8e2c47e/switchback/gateway"
)

// bootstrap returns the document a handler should serve for its deployment
// at start: etcd's current version when there is one; the Caddyfile's,
// written as version 1, when there is none; the last-known-good file when
// etcd cannot be reached; and the Caddyfile's as a last resort. With the
// store off because its data is damaged, only the last-known-good file will
// do: the operator asked for what was live, and the Caddyfile may be far
// older than that.
func (a *App) bootstrap(cfg gateway.Config) (gateway.Config, error) {
	if a.damaged != nil {
		lkg, err := a.readLastKnownGood(cfg.Name)
		if err != nil {
			return gateway.Config{}, fmt.Errorf("store data damaged and no usable last-known-good document (%w); repair the store's data: %w", err, a.damaged)
		}
		a.logger.Warn("store data damaged; serving the last-known-good version",
			zap.String("deployment", cfg.Name), zap.Uint64("version", lkg.Meta.Version))
		return lkg.Config, nil
	}
	ctx, cancel := context.WithTimeout(a.ctx, bootstrapTimeout)
	defer cancel()
	doc, created, err := a.store.Bootstrap(ctx, cfg, configstore.Meta{
		Author: a.Instance,
		Source: configstore.SourceBootstrap,
		Reason: "first start: the Caddyfile's document",
	})
	switch {
	case err == nil:
		if !created && !doc.Config.Equal(cfg) {
			a.warnOnce(cfg.Name, "the Caddyfile differs from the store; serving the store's version (etcd is the truth after bootstrap)",
				zap.Uint64("version", doc.Meta.Version), zap.Any("differences", configstore.Diff(cfg, doc.Config)))
		}
		return doc.Config, nil
	case errors.Is(err, configstore.ErrUnavailable):
		a.healthy.Store(false)
		if lkg, lerr := a.readLastKnownGood(cfg.Name); lerr == nil {
			a.logger.Warn("store unreachable at start; serving the last-known-good version",
				zap.String("deployment", cfg.Name), zap.Uint64("version", lkg.Meta.Version), zap.Error(err))
			return lkg.Config, nil
		} else if !errors.Is(lerr, os.ErrNotExist) {
			a.logger.Error("reading last-known-good", zap.String("deployment", cfg.Name), zap.Error(lerr))
		}
		a.logger.Warn("store unreachable at start and no last-known-good file; serving the Caddyfile's document until the store is back",
			zap.String("deployment", cfg.Name), zap.Error(err))
		return cfg, nil
	default:
		return gateway.Config{}, err
	}
}

func (a *App) warnOnce(name, msg string, fields ...zap.Field) {
	a.mu.Lock()
	seen := a.warned[name]
	a.warned[name] = true
	a.mu.Unlock()
	if !seen {
		a.logger.Warn(msg, append([]zap.Field{zap.String("deployment", name)}, fields...)...)
	}
}
