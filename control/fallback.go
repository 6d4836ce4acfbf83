package control

import (
	"context"
	"fmt"
	"time"

	"github.com/a8e2c47e/switchback/configstore"
	"github.com/a8e2c47e/switchback/guard"
	"github.com/a8e2c47e/switchback/rollout"
)

// Event kinds of the guard (configstore.Event.Kind): the strings of the
// guard.ActionKind each records. The rollouts' are rollout.Event*.
const (
	EventFallback        = "fallback"
	EventFallbackRefused = "fallback_refused"
	EventFlagOff         = "flag_off"
	// EventCriterionRollback: an external criterion's breach rolled back
	// the newest change; EventCriterionBreach: it breached with no recent
	// change to roll back.
	EventCriterionRollback = "criterion_rollback"
	EventCriterionBreach   = "criterion_breach"
)

// alarming is whether an event of kind says something went wrong.
func alarming(kind string) bool {
	switch kind {
	case EventFallback, EventFallbackRefused, EventFlagOff, EventCriterionRollback, EventCriterionBreach, rollout.EventAborted, EventReleaseRollbackFailed:
		return true
	}
	return false
}

// fallbackTimeout bounds one fallback write, so a slow store stalls the
// guard's loop (and with it the meters) at most this long.
const fallbackTimeout = 2 * time.Second

// FallBack writes what a guard judgement of deployment name asked for: a
// refusal is recorded as an event; a fallback (or a flag switched off) is
// written as a new version on top of the version judged, act.Version. If
// another instance got there first its compare-and-swap fails, and this
// one writes nothing and gets a *configstore.ConflictError: every instance
// converges on one fallback. A fallback written is recorded as an event
// and starts the cooldown (NoteGuardWrite). While the store is unreachable
// nothing is attempted and the error is configstore.ErrUnavailable: the
// gateway keeps serving the last applied version.
func (c *Control) FallBack(ctx context.Context, name string, act guard.Action) (configstore.Result, error) {
	if act.Kind == guard.Refused || act.Kind == guard.CriterionBreach {
		c.Record(ctx, configstore.Event{Deployment: name, Kind: act.Kind.String(), Subject: act.Subject, Version: act.Version, Reason: act.Reason})
		return configstore.Result{}, nil
	}
	if act.Kind != guard.Fallback && act.Kind != guard.FlagOff && act.Kind != guard.Revert {
		return configstore.Result{}, nil
	}
	if !c.reachable() {
		return configstore.Result{}, fmt.Errorf("guard: not writing the fallback of %s: %w", name, configstore.ErrUnavailable)
	}
	wctx, cancel := context.WithTimeout(ctx, fallbackTimeout)
	defer cancel()
	if refused := c.gateFallback(wctx, name, act); refused != "" {
		// The refusal starts the guard's cooldown as a fallback would:
		// asked again on every slot while the breach lasts, the gate would
		// read the releases and the databases, and record an event, each
		// time.
		c.NoteGuardWrite(name, c.now())
		c.Record(ctx, configstore.Event{Deployment: name, Kind: EventFallbackRefused, Subject: act.Subject, Version: act.Version, Reason: refused})
		return configstore.Result{}, fmt.Errorf("guard: fallback of %s: %s", name, refused)
	}
	res, err := c.store.Update(wctx, name, act.Version, configstore.Meta{
		Author:   c.instance,
		Source:   configstore.SourceGuard,
		Reason:   act.Reason,
		Fallback: true,
	}, act.Apply)
	if err != nil {
		return res, fmt.Errorf("guard: fallback of %s: %w", name, err)
	}
	if !res.Wrote {
		return res, nil
	}
	c.NoteGuardWrite(name, res.Doc.Meta.Time)
	c.wrote(res.Doc)
	c.Record(ctx, configstore.Event{Deployment: name, Kind: act.Kind.String(), Subject: act.Subject, Version: res.Doc.Meta.Version, Reason: act.Reason})
	return res, nil
}

// NoteGuardWrite remembers the time of a deployment's last guard version,
// whoever wrote it: the instance applying a guard version from the store
// calls it too, so every instance's cooldown runs from the same write.
func (c *Control) NoteGuardWrite(name string, t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if t.After(c.lastGuardWrite[name]) {
		c.lastGuardWrite[name] = t
	}
}

// LastFallback is when the deployment's last guard version was written;
// zero if never since this Control was built.
func (c *Control) LastFallback(name string) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lastGuardWrite[name]
}

// gateFallback asks the compatibility gate about a fallback's move and
// says why it is refused, or "": a fallback onto code that cannot run on
// the schema would turn a partial failure into a total one.
func (c *Control) gateFallback(ctx context.Context, name string, act guard.Action) string {
	if act.Kind != guard.Fallback || !c.Gates() {
		return "" // without databases, a fallback reads nothing more
	}
	doc, err := c.store.Version(ctx, name, act.Version)
	if err != nil {
		return ""
	}
	next := doc.Config.Clone()
	if act.Apply(&next) != nil {
		return ""
	}
	if e := c.CheckTraffic(ctx, name, doc.Config, next); e != nil {
		return trimReason(act.Reason + "; not falling back: " + e.Error())
	}
	return ""
}
