package admin

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/a8e2c47e/switchback/configstore"
	"github.com/a8e2c47e/switchback/gateway"
	"github.com/a8e2c47e/switchback/rollout"
)

// RolloutStatus is a rollout as the API shows it: as stored, and how long
// its current step still bakes.
type RolloutStatus struct {
	rollout.Rollout
	// BakeLeft is how long the current step still bakes; 0 once it has
	// baked (the rollout then waits for the guard's samples), and when the
	// rollout is not running.
	BakeLeft gateway.Duration `json:"bake_left"`
}

// startRolloutRequest is the body of POST .../rollouts: rollout.Request,
// its fields spelled out so a decoding error names them plainly.
type startRolloutRequest struct {
	Target string    `json:"target"`
	Steps  []float64 `json:"steps"`
	Bake   string    `json:"bake"`
	writeFields
}

// Rollout actions besides start.
const (
	rolloutPause  = "pause"
	rolloutResume = "resume"
	rolloutAbort  = "abort"
)

// maxRolloutAttempts bounds how often pause, resume and abort read the
// rollout again after losing a compare-and-swap to the driver recording a
// step.
const maxRolloutAttempts = 5

func (s *Server) rolloutRoutes() {
	const d = "/api/v1/deployments/{name}/rollouts"
	s.Handle("POST "+d, http.HandlerFunc(s.handleStartRollout), RoleOperator)
	s.Handle("GET "+d, http.HandlerFunc(s.handleGetRollout), RoleViewer)
	for _, action := range []string{rolloutPause, rolloutResume, rolloutAbort} {
		s.Handle("POST "+d+"/"+action, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			s.changeRollout(w, r, action)
		}), RoleOperator)
	}
}

func (s *Server) handleGetRollout(w http.ResponseWriter, r *http.Request) {
	ro, _, err := s.getRollout(r.Context(), r.PathValue("name"))
	if err != nil {
		s.writeErr(w, s.noRollout(r.Context(), r.PathValue("name"), err))
		return
	}
	writeJSON(w, http.StatusOK, s.rolloutStatus(ro))
}

// handleStartRollout validates the request against the current document
// and stores the rollout; the elected driver applies its first step.
func (s *Server) handleStartRollout(w http.ResponseWriter, r *http.Request) {
	var req startRolloutRequest
	m, ok := s.begin(w, r, "rollout-start", "", &req)
	if !ok {
		return
	}
	m.rec.Target = req.Target
	ctx, name := r.Context(), m.rec.Deployment
	doc, err := s.store.Get(ctx, name)
	if err != nil {
		s.fail(w, m, err)
		return
	}
	if m.rec.IfMatch != 0 && doc.Meta.Version != m.rec.IfMatch {
		s.fail(w, m, &configstore.ConflictError{Deployment: name, Want: m.rec.IfMatch, Current: doc.Meta.Version})
		return
	}
	ro, err := rollout.New(rollout.Request{Target: req.Target, Steps: req.Steps, Bake: req.Bake, Reason: req.Reason},
		doc.Config, newRolloutID(), m.meta.Author, m.rec.Time)
	if err != nil {
		s.fail(w, m, err)
		return
	}
	// A deployment has at most one active rollout: a new one may replace
	// only a finished one (or a record that does not decode), if nothing
	// changed it since it was read.
	var rev int64
	prev, prevRev, err := s.getRollout(ctx, name)
	var nf *configstore.NotFoundError
	switch {
	case errors.As(err, &nf):
	case err != nil && !errors.Is(err, errUndecodable):
		s.fail(w, m, err)
		return
	case err == nil && prev.State.Active():
		s.fail(w, m, &apiError{status: http.StatusConflict, field: "state",
			msg: fmt.Sprintf("deployment %q already has rollout %s of %s, %s; pause it, abort it or let it finish first", name, prev.ID, prev.Target, prev.State)})
		return
	default:
		rev = prevRev
	}
	if _, err := s.putRollout(ctx, ro, rev); err != nil {
		s.fail(w, m, err)
		return
	}
	steps := make([]string, len(ro.Steps))
	for i, v := range ro.Steps {
		steps[i] = pct(v)
	}
	s.rolloutEvent(ctx, ro, rollout.EventStarted, doc.Meta.Version, withWhy(fmt.Sprintf("%s started by %s: %s through %s, baking %s per step",
		ro.ID, m.meta.Author, ro.Target, strings.Join(steps, ", "), time.Duration(ro.Bake)), ro.Reason))
	m.rec.Status = http.StatusCreated
	s.audit(m.rec)
	writeJSON(w, http.StatusCreated, s.rolloutStatus(ro))
}

// changeRollout pauses, resumes or aborts a deployment's rollout. Pause and
// resume flip its state (resume restarts the step's bake). Abort records
// the rollout aborted first, so the driver leaves it alone, then writes the
// rollback as a new version.
func (s *Server) changeRollout(w http.ResponseWriter, r *http.Request, action string) {
	var req writeFields
	m, ok := s.begin(w, r, "rollout-"+action, "", &req)
	if !ok {
		return
	}
	ctx, name, who := r.Context(), m.rec.Deployment, m.meta.Author
	if m.rec.IfMatch != 0 {
		doc, err := s.store.Get(ctx, name)
		if err == nil && doc.Meta.Version != m.rec.IfMatch {
			err = &configstore.ConflictError{Deployment: name, Want: m.rec.IfMatch, Current: doc.Meta.Version}
		}
		if err != nil {
			s.fail(w, m, err)
			return
		}
	}
	var (
		ro   rollout.Rollout
		rev  int64
		kind string
	)
	for attempt := 1; ; attempt++ {
		var err error
		ro, rev, err = s.getRollout(ctx, name)
		if err != nil {
			s.fail(w, m, s.noRollout(ctx, name, err))
			return
		}
		m.rec.Target = ro.Target
		if aerr := checkTransition(ro, action); aerr != nil {
			s.fail(w, m, aerr)
			return
		}
		switch action {
		case rolloutPause:
			kind, ro.State, ro.Message = rollout.EventPaused, rollout.Paused, withWhy("paused by "+who, req.Reason)
		case rolloutResume:
			kind, ro.State, ro.StepStarted = rollout.EventResumed, rollout.Running, s.now().UTC().Round(0)
			ro.Message = withWhy("resumed by "+who, req.Reason) + "; the step's bake starts again"
		case rolloutAbort:
			kind, ro.State, ro.Message = rollout.EventAborted, rollout.Aborted, withWhy("aborted by "+who, req.Reason)
		}
		rev, err = s.putRollout(ctx, ro, rev)
		if errors.Is(err, configstore.ErrConflict) && attempt < maxRolloutAttempts {
			continue // the driver recorded a step meanwhile: look again
		}
		if err != nil {
			s.fail(w, m, err)
			return
		}
		break
	}
	version := uint64(0)
	if action == rolloutAbort {
		// The rollout is recorded aborted, so nothing else will roll the
		// target back: finish even if the caller hangs up meanwhile.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		res, err := s.store.Update(ctx, name, 0, configstore.Meta{
			Author:   who,
			Source:   configstore.SourceRollout,
			Reason:   rollout.AbortReason(ro, withWhy("by "+who, req.Reason)),
			Fallback: true,
		}, rollout.Rollback(ro))
		if err != nil {
			// The rollout stays aborted: say so, and that the target is
			// where the last step left it.
			ro.Message += "; the rollback failed: " + err.Error()
			s.putRolloutNote(ctx, ro, rev)
			s.rolloutEvent(ctx, ro, kind, 0, ro.Message)
			s.fail(w, m, fmt.Errorf("rollout %s aborted, but %s was not rolled back: %w", ro.ID, ro.Target, err))
			return
		}
		version = res.Doc.Meta.Version
		m.rec.Version, m.rec.From = version, res.Prev.Meta.Version
		if res.Wrote {
			m.rec.Changes = configstore.Diff(res.Prev.Config, res.Doc.Config)
			ro.Version = version
			ro.Message += fmt.Sprintf("; %s back to %s (version %d)", ro.Target, pct(ro.From), version)
		} else {
			ro.Message += fmt.Sprintf("; %s was already at %s", ro.Target, pct(ro.From))
		}
		s.putRolloutNote(ctx, ro, rev)
	}
	s.rolloutEvent(ctx, ro, kind, version, ro.Message)
	m.rec.Status = http.StatusOK
	s.audit(m.rec)
	writeJSON(w, http.StatusOK, s.rolloutStatus(ro))
}

// checkTransition refuses an action the rollout's state does not allow.
func checkTransition(ro rollout.Rollout, action string) *apiError {
	var ok bool
	var want string
	switch action {
	case rolloutPause:
		ok, want = ro.State == rollout.Running, "only a running rollout can be paused"
	case rolloutResume:
		ok, want = ro.State == rollout.Paused, "only a paused rollout can be resumed"
	case rolloutAbort:
		ok, want = ro.State.Active(), "only a running or paused rollout can be aborted"
	}
	if ok {
		return nil
	}
	return &apiError{status: http.StatusConflict, field: "state",
		msg: fmt.Sprintf("rollout %s of %s is %s; %s", ro.ID, ro.Target, ro.State, want)}
}

// putRolloutNote records what an abort's rollback did; the abort itself
// is already recorded, so a failure here is only logged.
func (s *Server) putRolloutNote(ctx context.Context, ro rollout.Rollout, rev int64) {
	if _, err := s.putRollout(ctx, ro, rev); err != nil {
		s.log.Warn("recording the rollback of an aborted rollout", zap.String("deployment", ro.Deployment), zap.String("rollout", ro.ID), zap.Error(err))
	}
}

// errUndecodable is a stored rollout that does not decode.
var errUndecodable = errors.New("stored rollout does not decode")

// getRollout reads a deployment's current or last rollout and the
// revision a compare-and-swap passes back to putRollout.
func (s *Server) getRollout(ctx context.Context, name string) (rollout.Rollout, int64, error) {
	rec, err := s.store.GetRecord(ctx, rollout.RecordKind, name)
	if err != nil {
		return rollout.Rollout{}, 0, err
	}
	ro, err := rollout.Decode(name, rec.Value)
	if err != nil {
		return rollout.Rollout{}, rec.Rev, fmt.Errorf("%w: %w", errUndecodable, err)
	}
	return ro, rec.Rev, nil
}

// putRollout stores ro if its record is still at rev (0: there is none).
func (s *Server) putRollout(ctx context.Context, ro rollout.Rollout, rev int64) (int64, error) {
	ro.Stamp(s.now())
	return s.store.PutRecord(ctx, rollout.RecordKind, ro.Deployment, ro, rev)
}

// noRollout turns getRollout's *NotFoundError into the answer naming what
// is missing: the deployment, or only its rollout.
func (s *Server) noRollout(ctx context.Context, name string, err error) error {
	if !errors.Is(err, configstore.ErrNotFound) {
		return err
	}
	if _, derr := s.store.Get(ctx, name); derr != nil {
		return derr
	}
	return &apiError{status: http.StatusNotFound, field: "name",
		msg: fmt.Sprintf("deployment %q has no rollout; start one with POST /api/v1/deployments/%s/rollouts", name, name)}
}

func (s *Server) rolloutStatus(ro rollout.Rollout) RolloutStatus {
	return RolloutStatus{Rollout: ro, BakeLeft: gateway.Duration(ro.BakeLeft(s.now()))}
}

// rolloutEvent records an event in the store's log; like a.event in the
// gateway, a store outage loses the entry but not the log line.
func (s *Server) rolloutEvent(ctx context.Context, ro rollout.Rollout, kind string, version uint64, reason string) {
	ev := configstore.Event{Deployment: ro.Deployment, Kind: kind, Subject: ro.Target, Version: version, Instance: s.instance, Reason: reason}
	s.log.Info("event", zap.String("kind", kind), zap.String("deployment", ro.Deployment), zap.String("subject", ro.Target), zap.String("reason", reason))
	if _, err := s.store.AppendEvent(ctx, ev); err != nil {
		s.log.Warn("recording event", zap.String("kind", kind), zap.Error(err))
	}
}

func withWhy(s, reason string) string {
	if reason == "" {
		return s
	}
	return s + ": " + reason
}

// newRolloutID is "r-" and 8 random hex digits: short enough to quote in
// a version's reason, unique enough for one deployment's rollouts.
func newRolloutID() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return "r-" + hex.EncodeToString(b[:])
}
