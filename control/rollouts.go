package control

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/a8e2c47e/switchback/configstore"
	"github.com/a8e2c47e/switchback/gateway"
	"github.com/a8e2c47e/switchback/rollout"
)

// ErrNoRollout is a deployment that exists but has never had a rollout.
var ErrNoRollout = errors.New("control: no rollout")

// errUndecodable is a stored rollout that does not decode.
var errUndecodable = errors.New("control: stored rollout does not decode")

// Rollout actions.
const (
	ActionStart  = "start"
	ActionPause  = "pause"
	ActionResume = "resume"
	ActionAbort  = "abort"
)

// StateError is an action the rollout's state does not allow: starting a
// rollout while another is active, pausing one that is not running, and so
// on.
type StateError struct {
	Action  string
	Rollout rollout.Rollout // the rollout in the way
}

func (e *StateError) Error() string {
	r := e.Rollout
	var want string
	switch e.Action {
	case ActionStart:
		return fmt.Sprintf("deployment %q already has rollout %s of %s, %s; pause it, abort it or let it finish first", r.Deployment, r.ID, r.Target, r.State)
	case ActionPause:
		want = "only a running rollout can be paused"
	case ActionResume:
		want = "only a paused rollout can be resumed"
	default:
		want = "only a running or paused rollout can be aborted"
	}
	return fmt.Sprintf("rollout %s of %s is %s; %s", r.ID, r.Target, r.State, want)
}

// Op is an operator's action on a deployment's rollout.
type Op struct {
	Deployment string
	// Author is who asks: the author of the version an abort writes.
	Author string
	// Reason is why, added to the rollout's message.
	Reason string
	// IfVersion, when not 0, is the version the deployment must be at
	// (If-Match); otherwise the action is a *configstore.ConflictError.
	IfVersion uint64
}

// Change is what an action on a rollout did.
type Change struct {
	// Rollout is the rollout as recorded after the action; on an error,
	// the rollout as read, when one was.
	Rollout rollout.Rollout
	// Rollback is an abort's rollback write: its Doc is the deployment's
	// version afterwards, Wrote whether it wrote one.
	Rollback configstore.Result
}

// maxAttempts bounds how often pause, resume and abort read the rollout
// again after losing a compare-and-swap to the driver recording a step.
const maxAttempts = 5

// rollbackTimeout bounds an abort's rollback, which goes on when the
// caller's context ends: the rollout is recorded aborted, so nothing else
// will put the target back.
const rollbackTimeout = 10 * time.Second

// Rollout reads a deployment's current or last rollout, with the revision
// its next write must compare. A deployment that does not exist is a
// *configstore.NotFoundError, one that has no rollout ErrNoRollout.
func (c *Control) Rollout(ctx context.Context, name string) (rollout.Rollout, int64, error) {
	rec, err := c.store.GetRecord(ctx, rollout.RecordKind, name)
	if errors.Is(err, configstore.ErrNotFound) {
		if _, derr := c.store.Get(ctx, name); derr != nil {
			return rollout.Rollout{}, 0, derr
		}
		return rollout.Rollout{}, 0, fmt.Errorf("%w: deployment %q has none", ErrNoRollout, name)
	}
	if err != nil {
		return rollout.Rollout{}, 0, err
	}
	r, err := rollout.Decode(name, rec.Value)
	if err != nil {
		return rollout.Rollout{}, rec.Rev, fmt.Errorf("%w: %w", errUndecodable, err)
	}
	return r, rec.Rev, nil
}

// Start validates req against the deployment's current document and
// stores a new rollout, running before its first step, which the elected
// driver applies. A deployment has at most one active rollout: a new one
// replaces only a finished one (or a record that does not decode), and
// only if nothing changed it since it was read. Rejections are
// *gateway.FieldError (the request), *StateError (an active rollout),
// *configstore.ConflictError and *configstore.NotFoundError.
func (c *Control) Start(ctx context.Context, op Op, req rollout.Request) (rollout.Rollout, error) {
	doc, err := c.store.Get(ctx, op.Deployment)
	if err != nil {
		return rollout.Rollout{}, err
	}
	if op.IfVersion != 0 && doc.Meta.Version != op.IfVersion {
		return rollout.Rollout{}, &configstore.ConflictError{Deployment: op.Deployment, Want: op.IfVersion, Current: doc.Meta.Version}
	}
	req.Reason = op.Reason
	r, err := rollout.New(req, doc.Config, newID(), op.Author, c.now())
	if err != nil {
		return rollout.Rollout{}, err
	}
	var rev int64
	prev, prevRev, err := c.Rollout(ctx, op.Deployment)
	switch {
	case errors.Is(err, ErrNoRollout):
	case errors.Is(err, errUndecodable):
		rev = prevRev
	case err != nil:
		return rollout.Rollout{}, err
	case prev.State.Active():
		return rollout.Rollout{}, &StateError{Action: ActionStart, Rollout: prev}
	default:
		rev = prevRev
	}
	if _, err := c.put(ctx, actor{}, r, rev); err != nil {
		return rollout.Rollout{}, err
	}
	steps := make([]string, len(r.Steps))
	for i, v := range r.Steps {
		steps[i] = pct(v)
	}
	c.Record(ctx, configstore.Event{Deployment: r.Deployment, Kind: rollout.EventStarted, Subject: r.Target, Version: doc.Meta.Version,
		Reason: withWhy(fmt.Sprintf("%s started by %s: %s through %s, baking %s per step",
			r.ID, op.Author, r.Target, strings.Join(steps, ", "), time.Duration(r.Bake)), r.Reason)})
	return r, nil
}

// Pause stops the deployment's running rollout where it is.
func (c *Control) Pause(ctx context.Context, op Op) (Change, error) {
	r, _, err := c.transition(ctx, op, ActionPause, func(r *rollout.Rollout) {
		r.State, r.Message = rollout.Paused, withWhy("paused by "+op.Author, op.Reason)
	})
	if err != nil {
		return Change{Rollout: r}, err
	}
	c.Record(ctx, configstore.Event{Deployment: r.Deployment, Kind: rollout.EventPaused, Subject: r.Target, Reason: r.Message})
	return Change{Rollout: r}, nil
}

// Resume lets the deployment's paused rollout run again; the step's bake
// starts again.
func (c *Control) Resume(ctx context.Context, op Op) (Change, error) {
	now := c.now()
	r, _, err := c.transition(ctx, op, ActionResume, func(r *rollout.Rollout) {
		r.State, r.StepStarted = rollout.Running, now.UTC().Round(0)
		r.Message = withWhy("resumed by "+op.Author, op.Reason) + "; the step's bake starts again"
	})
	if err != nil {
		return Change{Rollout: r}, err
	}
	c.Record(ctx, configstore.Event{Deployment: r.Deployment, Kind: rollout.EventResumed, Subject: r.Target, Reason: r.Message})
	return Change{Rollout: r}, nil
}

// Abort ends the deployment's running or paused rollout and puts its
// target back where the rollout found it, on whatever version is current,
// unless someone else has moved the target since (then it stays where they
// put it). A rollback that fails leaves the rollout aborted and the target
// where the last step left it; the error says so.
func (c *Control) Abort(ctx context.Context, op Op) (Change, error) {
	r, rev, err := c.transition(ctx, op, ActionAbort, func(r *rollout.Rollout) {
		*r = aborted(*r, withWhy("aborted by "+op.Author, op.Reason))
	})
	if err != nil {
		return Change{Rollout: r}, err
	}
	return c.finishAbort(ctx, op.Author, r, rev, abortRollback{why: withWhy("by "+op.Author, op.Reason)})
}

// transition reads the rollout, checks action is allowed, edits it and
// records it; a compare-and-swap lost to the driver (recording a step) is
// tried again on the rollout read anew, up to maxAttempts.
func (c *Control) transition(ctx context.Context, op Op, action string, edit func(*rollout.Rollout)) (rollout.Rollout, int64, error) {
	if op.IfVersion != 0 {
		doc, err := c.store.Get(ctx, op.Deployment)
		if err != nil {
			return rollout.Rollout{}, 0, err
		}
		if doc.Meta.Version != op.IfVersion {
			return rollout.Rollout{}, 0, &configstore.ConflictError{Deployment: op.Deployment, Want: op.IfVersion, Current: doc.Meta.Version}
		}
	}
	for attempt := 1; ; attempt++ {
		r, rev, err := c.Rollout(ctx, op.Deployment)
		if err != nil {
			return r, rev, err
		}
		if !allowed(r.State, action) {
			return r, rev, &StateError{Action: action, Rollout: r}
		}
		read := r
		edit(&r)
		rev, err = c.put(ctx, actor{}, r, rev)
		if errors.Is(err, configstore.ErrConflict) && attempt < maxAttempts {
			continue
		}
		if err != nil {
			return read, rev, err
		}
		return r, rev, nil
	}
}

func allowed(s rollout.State, action string) bool {
	switch action {
	case ActionPause:
		return s == rollout.Running
	case ActionResume:
		return s == rollout.Paused
	case ActionAbort:
		return s.Active()
	}
	return false
}

// actor is who writes: the elected driver, whose every write is fenced by
// its leadership, or an operator (no leader).
type actor struct {
	author string
	leader *configstore.Leader
}

func (a actor) opts() []configstore.WriteOption {
	if a.leader == nil {
		return nil
	}
	return []configstore.WriteOption{configstore.Fence(a.leader)}
}

// put records r if its record is still at rev (0: there is none), and
// returns the record's new revision.
func (c *Control) put(ctx context.Context, by actor, r rollout.Rollout, rev int64) (int64, error) {
	r.Stamp(c.now())
	return c.store.PutRecord(ctx, rollout.RecordKind, r.Deployment, r, rev, by.opts()...)
}

// aborted is r ended by an abort, message saying why: "aborted by alice:
// too slow", "at step 2/4 (pool green 10%); pool green breached its
// guard: ...".
func aborted(r rollout.Rollout, message string) rollout.Rollout {
	r.State, r.Message = rollout.Aborted, message
	return r
}

// abortRollback is what finishAbort writes after the rollout is recorded
// aborted.
type abortRollback struct {
	// why is the abort's cause, for the rollback version's reason, which
	// reads "rollout r-1a2b aborted " and why.
	why string
	// skip: the decision has no rollback (the target is gone, or someone
	// else has moved it already).
	skip bool
	// judged is the deployment's version the abort was decided on, for
	// the event when no rollback is written.
	judged uint64
}

// errMoved is a rollback refused because the rollout no longer holds its
// target (rollout.Holds).
var errMoved = errors.New("control: the target was moved outside the rollout")

// finishAbort is every abort's second half, once the rollout r is recorded
// aborted at rev: unless rb.skip, it puts the target back to r.From
// (rollout.Rollback) as a new version, on whatever version is current, but
// only while the rollout holds the target (rollout.Holds): a target moved
// since by the guard or an operator stays where they put it. It then
// records what that did in the rollout's message, and the rollout_aborted
// event. It goes on when ctx ends, within rollbackTimeout: nothing else
// will put the target back. Its writes are not fenced: the abort is
// decided and recorded (by a driver that was the leader then), and Holds
// keeps the rollback from undoing anybody's later change.
func (c *Control) finishAbort(ctx context.Context, author string, r rollout.Rollout, rev int64, rb abortRollback) (Change, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), rollbackTimeout)
	defer cancel()
	version := rb.judged
	var (
		res     configstore.Result
		rollErr error
	)
	if !rb.skip {
		rollback := rollout.Rollback(r)
		res, rollErr = c.store.Edit(ctx, r.Deployment, 0, configstore.Meta{
			Author:   author,
			Source:   configstore.SourceRollout,
			Reason:   rollout.AbortReason(r, rb.why),
			Fallback: true,
		}, func(cur configstore.Document, next *gateway.Config) error {
			if !rollout.Holds(r, rollout.Doc{Config: cur.Config, ByGuard: cur.Meta.Source == configstore.SourceGuard, Reason: cur.Meta.Reason}) {
				return errMoved
			}
			return rollback(next)
		})
		switch {
		case errors.Is(rollErr, errMoved):
			rollErr = nil
			r.Message += fmt.Sprintf("; %s left as it is: changed outside the rollout since", r.Target)
		case rollErr != nil:
			r.Message += "; the rollback failed: " + rollErr.Error()
		case res.Wrote:
			version, r.Version = res.Doc.Meta.Version, res.Doc.Meta.Version
			r.Message += fmt.Sprintf("; %s back to %s (version %d)", r.Target, pct(r.From), version)
			c.wrote(res.Doc)
		default:
			version = res.Doc.Meta.Version
			r.Message += fmt.Sprintf("; %s was already at %s", r.Target, pct(r.From))
		}
		// The abort itself is recorded; this only adds what the rollback
		// did, so a failure is logged and the abort stands.
		if _, err := c.put(ctx, actor{}, r, rev); err != nil {
			c.log.Warn("recording the rollback of an aborted rollout", zap.String("deployment", r.Deployment), zap.String("rollout", r.ID), zap.Error(err))
		}
	}
	c.Record(ctx, configstore.Event{Deployment: r.Deployment, Kind: rollout.EventAborted, Subject: r.Target, Version: version, Reason: r.Message})
	if rollErr != nil {
		return Change{Rollout: r, Rollback: res}, fmt.Errorf("rollout %s aborted, but %s was not rolled back: %w", r.ID, r.Target, rollErr)
	}
	return Change{Rollout: r, Rollback: res}, nil
}

// pct is a value as a percentage: "12.5%".
func pct(v float64) string { return gateway.FormatPercent(v) + "%" }

func withWhy(s, reason string) string {
	if reason == "" {
		return s
	}
	return s + ": " + reason
}

// newID is "r-" and 8 random hex digits: short enough to quote in a
// version's reason, unique enough for one deployment's rollouts.
func newID() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return "r-" + hex.EncodeToString(b[:])
}
