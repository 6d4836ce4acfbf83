package admin

import (
	"errors"
	"net/http"

	"github.com/a8e2c47e/switchback/configstore"
	"github.com/a8e2c47e/switchback/control"
	"github.com/a8e2c47e/switchback/release"
)

// Releases: code, traffic, flags, service configuration and schema needs
// of one release, as one record (package release).
//
//	POST   /api/v1/releases               {"name", "deployment", "pool", "label", "upstreams", "databases": {"main": {"version": 8, "min_version": 7}}, "reason"}
//	                                      opens a release; with "apply": {"pool_upstreams": true, "changes": [...], "weights": {...}, "flags": {"name": pct}, "force"}
//	                                      it also makes those changes, each as its own version, and finishes it (one step from CI)
//	POST   /api/v1/releases/{id}/finish   {"reason"}: records the state after
//	GET    /api/v1/releases?deployment=   newest first
//	GET    /api/v1/releases/{id}          the release and its timeline
//
// {id} is a release id or a release name (the newest release of that name).

// ReleaseView is a release as the API shows it: the record and the
// timeline of everything linked to it, oldest first.
type ReleaseView struct {
	release.Release
	Timeline []control.TimelineEntry `json:"timeline"`
}

// ReleaseList is the answer to GET /api/v1/releases.
type ReleaseList struct {
	Releases []release.Release `json:"releases"`
}

// ReleaseRequest is the body of POST /api/v1/releases.
type ReleaseRequest struct {
	Name       string   `json:"name"`
	Deployment string   `json:"deployment"`
	Pool       string   `json:"pool"`
	Label      string   `json:"label,omitempty"`
	Upstreams  []string `json:"upstreams,omitempty"`
	// Databases is the schema the release's code needs, by the name of
	// the `database NAME DSN` global option.
	Databases map[string]release.SchemaNeed `json:"databases,omitempty"`
	// Apply, when set, makes the release in one call.
	Apply  *ReleaseApply `json:"apply,omitempty"`
	Reason string        `json:"reason,omitempty"`
}

func (r *ReleaseRequest) reason() string { return r.Reason }

// ReleaseApply is what a one-step release changes: each part is its own
// version, written in this order: the change set, the pool's upstreams
// and label, the weights, the flags.
type ReleaseApply struct {
	// PoolUpstreams puts the release's upstreams and label on its pool.
	PoolUpstreams bool `json:"pool_upstreams,omitempty"`
	// Force replaces the pool even while it is the retained rollback
	// target.
	Force bool `json:"force,omitempty"`
	// Changes is a change set, as POST /api/v1/changesets takes it.
	Changes []configstore.ChangeSpec `json:"changes,omitempty"`
	// Weights replace the deployment's weights.
	Weights map[string]float64 `json:"weights,omitempty"`
	// Flags sets flag percentages, creating flags that do not exist.
	Flags map[string]float64 `json:"flags,omitempty"`
}

func (s *Server) releaseRoutes() {
	const rl = "/api/v1/releases"
	s.Handle("POST "+rl, http.HandlerFunc(s.handleReleaseStart), RoleOperator)
	s.Handle("GET "+rl, http.HandlerFunc(s.handleReleaseList), RoleViewer)
	s.Handle("GET "+rl+"/{id}", http.HandlerFunc(s.handleReleaseGet), RoleViewer)
	s.Handle("POST "+rl+"/{id}/finish", http.HandlerFunc(s.handleReleaseFinish), RoleOperator)
}

func (s *Server) handleReleaseStart(w http.ResponseWriter, r *http.Request) {
	var req ReleaseRequest
	m, ok := s.begin(w, r, "release-start", "", &req)
	if !ok {
		return
	}
	m.rec.Deployment, m.rec.Target = req.Deployment, req.Name
	op := control.Op{Deployment: req.Deployment, Author: m.meta.Author, Reason: req.Reason, IfVersion: m.rec.IfMatch}
	creq := control.ReleaseRequest{Name: req.Name, Pool: req.Pool, Label: req.Label, Upstreams: req.Upstreams,
		Databases: req.Databases, Source: m.meta.Source}
	var (
		rel release.Release
		err error
	)
	if req.Apply == nil {
		rel, err = s.control.StartRelease(r.Context(), op, creq)
	} else {
		a := req.Apply
		rel, err = s.control.ApplyRelease(r.Context(), op, creq, control.ReleaseApply{PoolUpstreams: a.PoolUpstreams, Force: a.Force,
			Changes: a.Changes, Weights: a.Weights, Flags: a.Flags})
	}
	if err != nil {
		s.fail(w, m, releaseErr(err))
		return
	}
	m.rec.From = rel.Before.DeploymentVersion
	if rel.After != nil {
		m.rec.Version = rel.After.DeploymentVersion
		if len(rel.After.ChangeSets) > 0 {
			m.rec.ChangeSet = rel.After.ChangeSets[0]
		}
	}
	m.rec.Status = http.StatusCreated
	s.audit(m.rec)
	s.writeRelease(w, r, http.StatusCreated, rel)
}

func (s *Server) handleReleaseFinish(w http.ResponseWriter, r *http.Request) {
	var req writeFields
	id := r.PathValue("id")
	m, ok := s.begin(w, r, "release-finish", id, &req)
	if !ok {
		return
	}
	rel, err := s.control.FinishRelease(r.Context(), control.Op{Author: m.meta.Author, Reason: req.Reason}, id)
	if err != nil {
		s.fail(w, m, releaseErr(err))
		return
	}
	m.rec.Deployment, m.rec.Target = rel.Deployment, rel.ID
	m.rec.From, m.rec.Version = rel.Before.DeploymentVersion, rel.After.DeploymentVersion
	m.rec.Status = http.StatusOK
	s.audit(m.rec)
	s.writeRelease(w, r, http.StatusOK, rel)
}

func (s *Server) handleReleaseList(w http.ResponseWriter, r *http.Request) {
	list, err := s.store.ListReleases(r.Context(), r.URL.Query().Get("deployment"))
	if err != nil {
		s.writeErr(w, releaseErr(err))
		return
	}
	if list == nil {
		list = []release.Release{}
	}
	writeJSON(w, http.StatusOK, ReleaseList{Releases: list})
}

func (s *Server) handleReleaseGet(w http.ResponseWriter, r *http.Request) {
	rel, _, err := s.store.FindRelease(r.Context(), r.PathValue("id"))
	if err != nil {
		s.writeErr(w, releaseErr(err))
		return
	}
	s.writeRelease(w, r, http.StatusOK, rel)
}

// writeRelease answers with rel and its timeline. A timeline that cannot
// be read (the deployment deleted since) leaves the record to answer.
func (s *Server) writeRelease(w http.ResponseWriter, r *http.Request, status int, rel release.Release) {
	tl, err := s.control.ReleaseTimeline(r.Context(), rel)
	if err != nil && !errors.Is(err, configstore.ErrNotFound) {
		s.writeErr(w, err)
		return
	}
	if tl == nil {
		tl = []control.TimelineEntry{}
	}
	writeJSON(w, status, ReleaseView{Release: rel, Timeline: tl})
}

// releaseErr answers the errors of releases: a missing deployment or
// release names its field, a release in the wrong state is a conflict on
// its status, and a database that cannot be read is the gateway's
// upstream failing.
func releaseErr(err error) error {
	var (
		nf  *configstore.NotFoundError
		se  *control.ReleaseStateError
		sce *control.SchemaError
	)
	switch {
	case errors.As(err, &se):
		return &apiError{status: http.StatusConflict, field: "status", msg: se.Error()}
	case errors.As(err, &sce):
		return &apiError{status: http.StatusBadGateway, field: "databases." + sce.Database,
			msg: sce.Error() + "; check the database's DSN in the `database` global option and that it is up"}
	case errors.As(err, &nf) && nf.What == "":
		switch nf.Kind {
		case "":
			return &apiError{status: http.StatusNotFound, field: "deployment", msg: nf.Error()}
		case "release":
			return &apiError{status: http.StatusNotFound, field: "id",
				msg: nf.Error() + "; list releases with GET /api/v1/releases or switchback release list"}
		case "service":
			return &apiError{status: http.StatusNotFound, field: "apply.changes", msg: nf.Error()}
		}
	}
	return err
}
