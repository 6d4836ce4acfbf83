package admin

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/a8e2c47e/switchback/configstore"
	"github.com/a8e2c47e/switchback/guard"
	"github.com/a8e2c47e/switchback/triage"
)

// maxTriageChanges bounds the versions a triage reads: an hour of changes
// is rarely more, and a runaway writer must not make triage slow.
const maxTriageChanges = 20

// handleTriage answers GET .../triage: the last hour's changes, the
// figures now and before the last change, and the suspects with the
// commands that undo them (triage.Analyze).
func (s *Server) handleTriage(w http.ResponseWriter, r *http.Request) {
	ctx, name := r.Context(), r.PathValue("name")
	versions, err := s.recentVersions(ctx, name, s.now())
	if err != nil {
		s.writeErr(w, err)
		return
	}
	var m triage.Measured
	scope := "instance " + s.instance + ": it does not serve this deployment, so it has no figures"
	if s.measured != nil {
		if got, ok := s.measured(name); ok {
			m, scope = got, "instance "+got.Instance
			if len(got.Fleet) > 1 {
				scope = fmt.Sprintf("fleet of %d instances (%s), asked through %s", len(got.Fleet), strings.Join(got.Fleet, ", "), got.Instance)
			}
		}
	}
	cur := versions[len(versions)-1]
	writeJSON(w, http.StatusOK, triage.Analyze(triage.Input{
		Versions:  versions,
		Now:       m.Now,
		Marks:     m.Marks,
		Policy:    guard.Compile(cur.Config.Guard),
		View:      m.View,
		Scope:     scope,
		FleetWide: len(m.Fleet) > 1,
		Time:      s.now(),
	}))
}

// recentVersions reads the versions of the last triage.Recent and the one
// before them, oldest first, at most maxTriageChanges+1 of them.
func (s *Server) recentVersions(ctx context.Context, name string, now time.Time) ([]configstore.Document, error) {
	metas, err := s.store.History(ctx, name, maxTriageChanges+1)
	if err != nil {
		return nil, err
	}
	var want []uint64
	for _, m := range metas {
		want = append(want, m.Version)
		if now.Sub(m.Time) > triage.Recent {
			break // the one before the hour, for the diff of its first change
		}
	}
	docs := make([]configstore.Document, len(want))
	for i, v := range want {
		d, err := s.store.Version(ctx, name, v)
		if err != nil {
			return nil, fmt.Errorf("read version %d: %w", v, err)
		}
		docs[len(want)-1-i] = d
	}
	return docs, nil
}

// restoreTarget resolves a restore request to the version whose document
// to write: the one given, or the last one before a time or a version.
func (s *Server) restoreTarget(ctx context.Context, name string, req restoreRequest) (uint64, error) {
	given := 0
	for _, set := range []bool{req.Version != 0, req.Before != "", req.BeforeVersion != 0} {
		if set {
			given++
		}
	}
	switch {
	case given == 0:
		return 0, &apiError{status: http.StatusBadRequest, field: "version",
			msg: `version: want the version to restore, for example {"version": 6}, or {"before": "2026-11-29T17:21:00Z"}, or {"before_version": 7}`}
	case given > 1:
		return 0, &apiError{status: http.StatusBadRequest, field: "before",
			msg: fmt.Sprintf("version %d, before %q, before_version %d: give exactly one of version, before and before_version",
				req.Version, req.Before, req.BeforeVersion)}
	case req.Version != 0:
		return req.Version, nil
	case req.BeforeVersion != 0:
		if req.BeforeVersion < 2 {
			return 0, &apiError{status: http.StatusBadRequest, field: "before_version",
				msg: fmt.Sprintf("before_version %d: want a version after the first (2, 3, ...): nothing comes before version 1", req.BeforeVersion)}
		}
		return req.BeforeVersion - 1, nil
	}
	t, err := time.Parse(time.RFC3339Nano, req.Before)
	if err != nil {
		return 0, &apiError{status: http.StatusBadRequest, field: "before",
			msg: fmt.Sprintf("before %q: want an RFC 3339 time, like 2026-11-29T17:21:00Z", req.Before)}
	}
	metas, err := s.store.History(ctx, name, 0)
	if err != nil {
		return 0, err
	}
	for _, m := range metas { // newest first
		if m.Time.Before(t) {
			return m.Version, nil
		}
	}
	first := metas[len(metas)-1]
	return 0, &apiError{status: http.StatusBadRequest, field: "before",
		msg: fmt.Sprintf("before %q: no version is older; want a time after %s, when version %d (the oldest kept) was written",
			req.Before, first.Time.UTC().Format(time.RFC3339Nano), first.Version)}
}

// Triage returns the instance's triage of a deployment.
func (c *Client) Triage(ctx context.Context, name string) (triage.Report, error) {
	var out triage.Report
	err := c.do(ctx, http.MethodGet, deploymentPath(name)+"/triage", nil, WriteOptions{}, &out)
	return out, err
}

// RestoreBefore writes the last version before a time again, as one new
// version: everything since is undone in one step.
func (c *Client) RestoreBefore(ctx context.Context, name string, before time.Time, o WriteOptions) (Deployment, error) {
	return c.write(ctx, http.MethodPost, deploymentPath(name)+"/restore",
		restoreRequest{Before: before.UTC().Format(time.RFC3339Nano), writeFields: writeFields{o.Reason}}, o)
}

// RestoreBeforeVersion writes the version before v again (v-1), as one new
// version: v and everything after it are undone in one step.
func (c *Client) RestoreBeforeVersion(ctx context.Context, name string, v uint64, o WriteOptions) (Deployment, error) {
	return c.write(ctx, http.MethodPost, deploymentPath(name)+"/restore",
		restoreRequest{BeforeVersion: v, writeFields: writeFields{o.Reason}}, o)
}

// restoreField is the request field a missing version is blamed on.
func restoreField(req restoreRequest) string {
	switch {
	case req.Before != "":
		return "before"
	case req.BeforeVersion != 0:
		return "before_version"
	}
	return "version"
}
