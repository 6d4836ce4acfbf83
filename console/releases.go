package console

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/a8e2c47e/switchback/admin"
	"github.com/a8e2c47e/switchback/release"
)

// Releases: the list, one release with its changes, timeline and
// rollback, and the rollback's plan-then-confirm dialog. The plan is the
// API's own dry run (plan=true), so what the dialog shows is what the
// elected instance will run.

type releasesData struct {
	Deployment string
	Rows       []releaseRow
}

func (c *Console) handleReleases(w http.ResponseWriter, r *http.Request, s *session) {
	dep := r.URL.Query().Get("deployment")
	list, err := c.apiFor(r, s).Releases(r.Context(), dep)
	if err != nil {
		c.fail(w, r, s, apiStatus(err), "Could not list the releases: "+apiMessage(err))
		return
	}
	now := c.now()
	data := releasesData{Deployment: dep}
	for _, rel := range list {
		data.Rows = append(data.Rows, releaseRowOf(now, rel))
	}
	c.render(w, r, http.StatusOK, "releases", &page{Title: "Releases", Nav: "releases", User: s, Live: "*", LiveRelease: "*", Data: data})
}

type releaseData struct {
	releaseRow
	Path     string // the release's console URL
	Changes  []changeRow
	Timeline []timelineRow
	Steps    []stepRow
	Failed   *stepRow
	// Requested and Done are the rollback's request and end; Took how long
	// it took, from the request.
	Requested, Done stamp
	Took            string
	// CanRollBack: the status lets a rollback be asked for (open,
	// finished, or a failed rollback tried again).
	CanRollBack bool
}

func (c *Console) handleRelease(w http.ResponseWriter, r *http.Request, s *session) {
	id := r.PathValue("id")
	v, err := c.apiFor(r, s).Release(r.Context(), id)
	if err != nil {
		c.fail(w, r, s, apiStatus(err), "Could not read release "+strconv.Quote(id)+": "+apiMessage(err))
		return
	}
	now := c.now()
	rel := v.Release
	data := releaseData{
		releaseRow: releaseRowOf(now, rel),
		Path:       releasePath(rel.ID),
		Changes:    releaseChanges(rel.Before, rel.After),
		Timeline:   timelineRows(now, v.Timeline),
	}
	switch rel.Status {
	case release.Open, release.Finished, release.RollbackFailed:
		data.CanRollBack = true
	}
	if rb := rel.Rollback; rb != nil {
		data.Steps = stepRows(now, rb.Steps)
		data.Failed = failedStep(data.Steps)
		data.Requested, data.Done = stampOf(now, rb.Requested), stampOf(now, rb.Finished)
		if !rb.Finished.IsZero() {
			data.Took = took(rb.Finished.Sub(rb.Requested))
		}
	}
	p := &page{Title: "Release " + rel.Name, Nav: "releases", User: s, Live: rel.Deployment, LiveRelease: rel.ID, Data: data}
	// Only what the console itself sends here is shown.
	switch r.URL.Query().Get("rollback") {
	case "requested":
		p.Flash = "Rollback requested. The elected gateway instance runs it one step at a time; this page follows it."
	case "noop":
		p.Flash = "Nothing was done: this release is rolled back already, or its rollback is under way."
	}
	c.render(w, r, http.StatusOK, "release", p)
}

func releasePath(id string) string { return Prefix + "releases/" + url.PathEscape(id) }

// rollbackOptions reads the dialog's options: a checkbox is "1" or absent.
func rollbackOptions(v url.Values) (admin.ReleaseRollbackOptions, error) {
	var o admin.ReleaseRollbackOptions
	for _, f := range []struct {
		field string
		dst   *bool
	}{{"restore_data", &o.RestoreData}, {"force", &o.Force}} {
		switch got := v.Get(f.field); got {
		case "":
		case "1":
			*f.dst = true
		default:
			return o, fmt.Errorf("%s %q: want 1 (ticked) or nothing", f.field, got)
		}
	}
	return o, nil
}

type rollbackPlanData struct {
	Release release.Release
	Path    string
	Options admin.ReleaseRollbackOptions
	Steps   []stepRow
	// Refused counts the steps that will be refused as planned.
	Refused int
	// NoOp says why there is nothing to confirm.
	NoOp string
}

// handleRollbackPlan is the dialog: the API's plan of the rollback with
// the chosen options, each step and what it will do, before anything is
// done.
func (c *Console) handleRollbackPlan(w http.ResponseWriter, r *http.Request, s *session) {
	id := r.PathValue("id")
	if !s.canChange() {
		c.fail(w, r, s, http.StatusForbidden, s.who.Name+" (role "+string(s.who.Role)+") may look but not change anything.")
		return
	}
	o, err := rollbackOptions(r.URL.Query())
	if err != nil {
		c.fail(w, r, s, http.StatusBadRequest, err.Error())
		return
	}
	o.Plan = true
	res, err := c.apiFor(r, s).RollbackRelease(r.Context(), id, o, admin.WriteOptions{})
	if err != nil {
		c.fail(w, r, s, apiStatus(err), "Could not plan the rollback of release "+strconv.Quote(id)+": "+apiMessage(err))
		return
	}
	o.Plan = false
	data := rollbackPlanData{Release: res.Release, Path: releasePath(res.Release.ID), Options: o, NoOp: res.NoOp,
		Steps: stepRows(c.now(), res.Steps)}
	for _, st := range data.Steps {
		if st.Refusal != "" {
			data.Refused++
		}
	}
	c.render(w, r, http.StatusOK, "rollback", &page{Title: "Roll back release " + res.Release.Name, Nav: "releases", User: s, Data: data})
}

// handleRollback asks the API for the rollback the dialog showed; the
// elected instance runs it, and the release page follows it.
func (c *Console) handleRollback(w http.ResponseWriter, r *http.Request, s *session) {
	id := r.PathValue("id")
	if !c.readForm(w, r, s) {
		return
	}
	o, err := rollbackOptions(r.PostForm)
	if err != nil {
		c.fail(w, r, s, http.StatusBadRequest, err.Error())
		return
	}
	reason := strings.TrimSpace(r.PostFormValue("reason"))
	if reason == "" {
		c.fail(w, r, s, http.StatusBadRequest, "Reason: say why you roll this release back; it is recorded with the rollback and every version it writes. Nothing was done.")
		return
	}
	res, err := c.apiFor(r, s).RollbackRelease(r.Context(), id, o, admin.WriteOptions{Reason: reason})
	if err != nil {
		c.fail(w, r, s, apiStatus(err), "The rollback was not started: "+apiMessage(err))
		return
	}
	outcome := "requested"
	if res.NoOp != "" {
		outcome = "noop"
	}
	http.Redirect(w, r, releasePath(res.Release.ID)+"?rollback="+outcome, http.StatusSeeOther)
}
