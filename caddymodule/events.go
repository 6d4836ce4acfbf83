package caddymodule

import (
	"context"
	"time"

	"go.uber.org/zap"

	"github.com/a8e2c47e/switchback/configstore"
)

// Event is an entry of the events log the admin API serves.
type Event = configstore.Event

// Event kinds the app records.
const (
	EventFallback        = "fallback"
	EventFallbackRefused = "fallback_refused"
	EventFlagOff         = "flag_off"
)

// event records ev in the store's log, counts it, and logs it; a store
// outage loses the log entry but never the log line.
func (a *App) event(ctx context.Context, ev Event) {
	ev.Instance = a.Instance
	a.metrics.events.WithLabelValues(ev.Deployment, ev.Kind).Inc()
	a.logger.Warn("event", zap.String("kind", ev.Kind), zap.String("deployment", ev.Deployment),
		zap.String("subject", ev.Subject), zap.Uint64("version", ev.Version), zap.String("reason", ev.Reason))
	if !a.healthy.Load() {
		return // the log line stands; waiting on an unreachable store would stall the guard
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if _, err := a.store.AppendEvent(ctx, ev); err != nil {
		a.logger.Error("recording event", zap.Error(err))
	}
}
