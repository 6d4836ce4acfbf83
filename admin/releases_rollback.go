package admin

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/a8e2c47e/switchback/configstore"
	"github.com/a8e2c47e/switchback/control"
	"github.com/a8e2c47e/switchback/databases"
	"github.com/a8e2c47e/switchback/gateway"
	"github.com/a8e2c47e/switchback/release"
)

// Request bodies of the release rollback and redeploy.
type (
	releaseRollbackRequest struct {
		// Plan only answers the plan; nothing is recorded.
		Plan        bool `json:"plan,omitempty"`
		RestoreData bool `json:"restore_data,omitempty"`
		Force       bool `json:"force,omitempty"`
		writeFields
	}
	releaseRedeployRequest struct {
		Force bool `json:"force,omitempty"`
		// Wait bounds the wait for the standby pool's health checks, like
		// "2m"; default 1m.
		Wait string `json:"wait,omitempty"`
		writeFields
	}
)

// ReleaseRollback is the answer to POST /api/v1/releases/{id}/rollback.
type ReleaseRollback struct {
	Release release.Release `json:"release"`
	// Steps is the plan, in the order the steps run.
	Steps []release.Step `json:"steps"`
	// Planned is true for a dry run (plan): nothing was recorded.
	Planned bool `json:"planned,omitempty"`
	// NoOp says why nothing was done, when nothing was.
	NoOp string `json:"no_op,omitempty"`
}

// ReleaseRedeploy is the answer to POST /api/v1/releases/{id}/redeploy.
type ReleaseRedeploy struct {
	Release  release.Release `json:"release"`
	Pool     string          `json:"pool"`
	Deployed uint64          `json:"deployed_version"`
	Moved    uint64          `json:"moved_version"`
	Health   string          `json:"health"`
}

func (s *Server) releaseRollbackRoutes() {
	s.Handle("POST /api/v1/releases/{id}/rollback", http.HandlerFunc(s.handleReleaseRollback), RoleOperator)
	s.Handle("POST /api/v1/releases/{id}/redeploy", http.HandlerFunc(s.handleReleaseRedeploy), RoleOperator)
}

// handleReleaseRollback plans a release's rollback and, unless plan, hands
// it to the elected driver (control.RequestRollback): 202 when recorded,
// 200 for a plan or a no-op.
func (s *Server) handleReleaseRollback(w http.ResponseWriter, r *http.Request) {
	var req releaseRollbackRequest
	m, ok := s.begin(w, r, "release-rollback", r.PathValue("id"), &req)
	if !ok {
		return
	}
	res, err := s.control.RequestRollback(r.Context(), control.Op{Author: m.meta.Author, Reason: m.rec.Reason}, r.PathValue("id"),
		control.RollbackOptions{Plan: req.Plan, RestoreData: req.RestoreData, Force: req.Force})
	m.rec.Deployment = res.Release.Deployment
	if err != nil {
		s.fail(w, m, rollbackErr(err))
		return
	}
	status := http.StatusAccepted
	if req.Plan || res.NoOp != "" {
		status = http.StatusOK
	}
	m.rec.Status = status
	s.audit(m.rec)
	writeJSON(w, status, ReleaseRollback{Release: res.Release, Steps: res.Steps, Planned: req.Plan, NoOp: res.NoOp})
}

// handleReleaseRedeploy puts a previous release back on the standby pool
// and moves traffic to it once healthy (control.Redeploy); it answers
// when traffic has moved.
func (s *Server) handleReleaseRedeploy(w http.ResponseWriter, r *http.Request) {
	var req releaseRedeployRequest
	m, ok := s.begin(w, r, "release-redeploy", r.PathValue("id"), &req)
	if !ok {
		return
	}
	var wait time.Duration
	if req.Wait != "" {
		d, err := time.ParseDuration(req.Wait)
		if err != nil || d <= 0 {
			s.fail(w, m, &apiError{status: http.StatusBadRequest, field: "wait",
				msg: fmt.Sprintf("wait: %q: want a positive duration, like 2m", req.Wait)})
			return
		}
		wait = d
	}
	res, err := s.control.Redeploy(r.Context(), control.Op{Author: m.meta.Author, Reason: m.rec.Reason, IfVersion: m.rec.IfMatch},
		r.PathValue("id"), control.RedeployOptions{Wait: wait, Force: req.Force})
	m.rec.Deployment = res.Release.Deployment
	if err != nil {
		s.fail(w, m, rollbackErr(err))
		return
	}
	m.rec.Version, m.rec.From = res.Moved.Doc.Meta.Version, res.Deployed.Prev.Meta.Version
	m.rec.Changes = configstore.Diff(res.Deployed.Prev.Config, res.Moved.Doc.Config)
	m.rec.Status = http.StatusOK
	s.audit(m.rec)
	writeJSON(w, http.StatusOK, ReleaseRedeploy{Release: res.Release, Pool: res.Pool,
		Deployed: res.Deployed.Doc.Meta.Version, Moved: res.Moved.Doc.Meta.Version, Health: res.Health})
}

// rollbackErr answers control's rollback and redeploy refusals: nothing
// to undo, the compatibility gate and a refused schema down are conflicts
// with the state, not bad input; the rest as every release error.
func rollbackErr(err error) error {
	var ie *release.IncompatibleError
	switch {
	case errors.Is(err, control.ErrNothingToUndo), errors.As(err, &ie), errors.Is(err, databases.ErrRefused):
		return &apiError{status: http.StatusConflict, msg: err.Error()}
	}
	return releaseErr(err)
}

// gate asks the compatibility gate about a traffic change to deployment
// m.rec.Deployment that mutate makes: a refusal is a 409 naming the
// release and the migration, unless force, which records the override in
// the version's reason. It returns the version it checked, which the
// write must then apply to (so what was checked is what is written), or 0
// when nothing needed checking.
func (s *Server) gate(ctx context.Context, m *mutation, force bool, mutate func(*gateway.Config) error) (uint64, error) {
	if !s.control.Gates() {
		return 0, nil // no database configured: a flip stays one read and one write
	}
	doc, err := s.store.Get(ctx, m.rec.Deployment)
	if errors.Is(err, configstore.ErrUnavailable) {
		return 0, err // the write would wait for the store as long again
	}
	if err != nil {
		return 0, nil // the write reports it
	}
	next := doc.Config.Clone()
	if mutate(&next) != nil {
		return 0, nil // the write reports it
	}
	if len(release.Entering(doc.Config.Weights, next.Weights)) == 0 {
		return 0, nil
	}
	if e := s.control.CheckTraffic(ctx, m.rec.Deployment, doc.Config, next); e != nil {
		if !force {
			return 0, &apiError{status: http.StatusConflict, field: "weights", msg: "refused by the compatibility gate: " + e.Error()}
		}
		m.meta.Reason = forcedReason(m.meta.Reason, e)
	}
	return doc.Meta.Version, nil
}

func forcedReason(reason string, e *release.IncompatibleError) string {
	note := fmt.Sprintf("forced past the compatibility gate: pool %s needs %s at version %d, contract %s applied", e.Pool, e.Database, e.Need, e.Contract.File)
	if reason != "" {
		note = reason + "; " + note
	}
	if r := []rune(note); len(r) > gateway.MaxReason {
		note = string(r[:gateway.MaxReason])
	}
	return note
}
