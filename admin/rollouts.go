package admin

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/a8e2c47e/switchback/configstore"
	"github.com/a8e2c47e/switchback/control"
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

// Rollout actions besides start: the last element of their paths.
const (
	rolloutPause  = control.ActionPause
	rolloutResume = control.ActionResume
	rolloutAbort  = control.ActionAbort
)

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
	ro, _, err := s.control.Rollout(r.Context(), r.PathValue("name"))
	if err != nil {
		s.writeErr(w, rolloutErr(r.PathValue("name"), err))
		return
	}
	writeJSON(w, http.StatusOK, s.rolloutStatus(ro))
}

// handleStartRollout stores a new rollout (control.Start); the elected
// driver applies its first step.
func (s *Server) handleStartRollout(w http.ResponseWriter, r *http.Request) {
	var req startRolloutRequest
	m, ok := s.begin(w, r, "rollout-start", "", &req)
	if !ok {
		return
	}
	m.rec.Target = req.Target
	ro, err := s.control.Start(r.Context(), s.rolloutOp(m), rollout.Request{Target: req.Target, Steps: req.Steps, Bake: req.Bake})
	if err != nil {
		s.fail(w, m, rolloutErr(m.rec.Deployment, err))
		return
	}
	m.rec.Status = http.StatusCreated
	s.audit(m.rec)
	writeJSON(w, http.StatusCreated, s.rolloutStatus(ro))
}

// changeRollout pauses, resumes or aborts a deployment's rollout
// (control.Pause, Resume, Abort).
func (s *Server) changeRollout(w http.ResponseWriter, r *http.Request, action string) {
	var req writeFields
	m, ok := s.begin(w, r, "rollout-"+action, "", &req)
	if !ok {
		return
	}
	ctx, op := r.Context(), s.rolloutOp(m)
	var (
		ch  control.Change
		err error
	)
	switch action {
	case rolloutPause:
		ch, err = s.control.Pause(ctx, op)
	case rolloutResume:
		ch, err = s.control.Resume(ctx, op)
	case rolloutAbort:
		ch, err = s.control.Abort(ctx, op)
		if res := ch.Rollback; err == nil {
			m.rec.Version, m.rec.From = res.Doc.Meta.Version, res.Prev.Meta.Version
			if res.Wrote {
				m.rec.Changes = configstore.Diff(res.Prev.Config, res.Doc.Config)
			}
		}
	}
	m.rec.Target = ch.Rollout.Target
	if err != nil {
		s.fail(w, m, rolloutErr(m.rec.Deployment, err))
		return
	}
	m.rec.Status = http.StatusOK
	s.audit(m.rec)
	writeJSON(w, http.StatusOK, s.rolloutStatus(ch.Rollout))
}

func (s *Server) rolloutOp(m *mutation) control.Op {
	return control.Op{Deployment: m.rec.Deployment, Author: m.meta.Author, Reason: m.rec.Reason, IfVersion: m.rec.IfMatch}
}

// rolloutErr answers control's rollout errors: an action the rollout's
// state does not allow is a conflict on its state; a deployment without a
// rollout says how to start one. Other errors are left to classify.
func rolloutErr(name string, err error) error {
	var se *control.StateError
	switch {
	case errors.As(err, &se):
		return &apiError{status: http.StatusConflict, field: "state", msg: se.Error()}
	case errors.Is(err, control.ErrNoRollout):
		return &apiError{status: http.StatusNotFound, field: "name",
			msg: fmt.Sprintf("deployment %q has no rollout; start one with POST /api/v1/deployments/%s/rollouts", name, name)}
	}
	return err
}

func (s *Server) rolloutStatus(ro rollout.Rollout) RolloutStatus {
	return RolloutStatus{Rollout: ro, BakeLeft: gateway.Duration(ro.BakeLeft(s.now()))}
}
