package console

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strconv"

	"github.com/a8e2c47e/switchback/admin"
	"github.com/a8e2c47e/switchback/configstore"
	"github.com/a8e2c47e/switchback/gateway"
	"github.com/a8e2c47e/switchback/guard"
	"github.com/a8e2c47e/switchback/rollout"
)

// historyPage is how many versions one history page shows.
const historyPage = 50

type overviewData struct {
	Deployments []deploymentView
	Events      []configstore.Event
	EventsError string
}

func (c *Console) handleOverview(w http.ResponseWriter, r *http.Request, s *session) {
	a := c.apiFor(r, s)
	deps, err := a.List(r.Context())
	if err != nil {
		c.fail(w, r, s, apiStatus(err), "Could not list the deployments: "+apiMessage(err))
		return
	}
	data := overviewData{}
	for _, d := range deps {
		data.Deployments = append(data.Deployments, viewOf(d))
	}
	if data.Events, err = a.events(r.Context(), "", 20); err != nil {
		data.EventsError = apiMessage(err)
	}
	c.render(w, r, http.StatusOK, "overview", &page{Title: "Deployments", Nav: "overview", User: s, Live: "*", Data: data})
}

type deploymentData struct {
	deploymentView
	Pools      []poolRow
	Flags      []flagRow
	Guard      *guard.View
	GuardError string
	Rollout    *admin.RolloutStatus
	Steps      []step
	Recent     []configstore.Meta
	Events     []configstore.Event
}

// step is one step of a rollout, for the steps list.
type step struct {
	Percent float64
	State   string // done, current, next
}

func (c *Console) handleDeployment(w http.ResponseWriter, r *http.Request, s *session) {
	a, ctx, name := c.apiFor(r, s), r.Context(), r.PathValue("name")
	d, err := a.Status(ctx, name)
	if err != nil {
		c.fail(w, r, s, apiStatus(err), "Could not read deployment "+strconv.Quote(name)+": "+apiMessage(err))
		return
	}
	data := deploymentData{deploymentView: viewOf(d)}
	if v, err := a.Guard(ctx, name); err != nil {
		data.GuardError = apiMessage(err)
	} else {
		data.Guard = &v
	}
	// The guard's ceilings, drawn on the charts; zero when there is no
	// guard or a check is off.
	var ceiling float64
	var p95 gateway.Duration
	if d.Guard != nil {
		ceiling, p95 = d.Guard.ErrorRate, d.Guard.P95
	}
	for i, pn := range data.PoolNames {
		p := poolRow{Name: pn, Class: poolClass(pn, i), Pool: d.Pools[pn], Weight: d.Weights[pn]}
		if g := data.Guard; g != nil {
			if h, ok := g.Health[pn]; ok {
				p.Health = &h
			}
			p.Retained = g.Retained[pn]
			if pop, ok := g.Pools[pn]; ok {
				p.Window = &pop
				p.ErrChart, p.P95Chart = rateChart(pop, ceiling), p95Chart(pop, p95)
			}
		}
		data.Pools = append(data.Pools, p)
	}
	for i, fn := range data.FlagNames {
		f := flagRow{Name: fn, ID: "flag-" + strconv.Itoa(i), Percent: d.Flags[fn].Percent}
		if g := data.Guard; g != nil {
			if co, ok := g.Flags[fn]; ok {
				f.Cohorts = &co
				f.OnErr, f.OffErr = rateChart(co.On, ceiling), rateChart(co.Off, ceiling)
				f.OnP95, f.OffP95 = p95Chart(co.On, p95), p95Chart(co.Off, p95)
			}
		}
		data.Flags = append(data.Flags, f)
	}
	if ro, err := a.Rollout(ctx, name); err == nil {
		data.Rollout = &ro
		for i, pc := range ro.Steps {
			st := "next"
			switch {
			case i < ro.Step:
				st = "done"
			case i == ro.Step:
				st = "current"
			}
			data.Steps = append(data.Steps, step{Percent: pc, State: st})
		}
	}
	if data.Recent, err = a.History(ctx, name, 5); err != nil {
		c.log.Debug("console: recent history: " + err.Error())
	}
	if data.Events, err = a.events(ctx, name, 10); err != nil {
		c.log.Debug("console: events: " + err.Error())
	}
	p := &page{Title: name, Nav: "overview", User: s, Live: name, Data: data}
	// Only what the console itself sends here is shown: a link cannot make
	// the page say something else.
	if v, err := strconv.ParseUint(r.URL.Query().Get("wrote"), 10, 64); err == nil && v > 0 {
		p.Flash = "Wrote version " + strconv.FormatUint(v, 10) + ". This is the new state."
	}
	switch v := rollout.State(r.URL.Query().Get("rollout")); v {
	case rollout.Running, rollout.Paused, rollout.Aborted, rollout.Done:
		p.Flash = "The rollout is now " + string(v) + "."
	}
	c.render(w, r, http.StatusOK, "deployment", p)
}

type historyData struct {
	Name     string
	Current  uint64
	Rows     []configstore.Meta
	Page     int
	Prev     int
	Next     int
	From, To uint64
}

func (c *Console) handleHistory(w http.ResponseWriter, r *http.Request, s *session) {
	a, ctx, name := c.apiFor(r, s), r.Context(), r.PathValue("name")
	pg := 1
	if v := r.URL.Query().Get("page"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			c.fail(w, r, s, http.StatusBadRequest, "page "+strconv.Quote(v)+": want a page number (1, 2, ...)")
			return
		}
		pg = n
	}
	data := historyData{Name: name, Page: pg}
	var err error
	if pg == 1 {
		err = c.firstPage(ctx, a, &data)
	} else {
		err = c.olderPage(ctx, a, &data)
	}
	if err != nil {
		c.fail(w, r, s, apiStatus(err), "Could not read the history of "+strconv.Quote(name)+": "+apiMessage(err))
		return
	}
	if data.To = data.Current; data.To > 1 {
		data.From = data.To - 1
	}
	if pg > 1 {
		data.Prev = pg - 1
	}
	c.render(w, r, http.StatusOK, "history", &page{Title: name + " history", Nav: "overview", User: s, Live: name, Data: data})
}

// firstPage lists the newest versions with one history request.
func (c *Console) firstPage(ctx context.Context, a *api, data *historyData) error {
	metas, err := a.History(ctx, data.Name, historyPage+1)
	if err != nil {
		return err
	}
	if len(metas) > 0 {
		data.Current = metas[0].Version
	}
	if len(metas) > historyPage {
		data.Next, metas = 2, metas[:historyPage]
	}
	data.Rows = metas
	return nil
}

// olderPage reads a later page version by version: the API's history has
// no offset, and reading every newer version's metadata to skip it would
// make the last of 1,000 versions' pages slow. Versions are numbered
// without gaps, and retention drops the oldest, so a missing version ends
// the history.
func (c *Console) olderPage(ctx context.Context, a *api, data *historyData) error {
	cur, err := a.Status(ctx, data.Name)
	if err != nil {
		return err
	}
	data.Current = cur.Version
	skip := uint64(data.Page-1) * historyPage
	if skip >= cur.Version {
		return &admin.APIError{Status: http.StatusNotFound, Field: "page",
			Message: fmt.Sprintf("page %d: the history has %d versions, %d to a page", data.Page, cur.Version, historyPage)}
	}
	top := cur.Version - skip
	lowest := uint64(1)
	if top > historyPage {
		lowest = top - historyPage + 1
	}
	for v := top; v >= lowest; v-- {
		d, err := a.Version(ctx, data.Name, v)
		if apiStatus(err) == http.StatusNotFound {
			return nil // dropped by retention
		}
		if err != nil {
			return err
		}
		data.Rows = append(data.Rows, d.Meta)
	}
	if bottom := top - uint64(len(data.Rows)); bottom >= 1 {
		if _, err := a.Version(ctx, data.Name, bottom); err == nil {
			data.Next = data.Page + 1
		}
	}
	return nil
}

type diffData struct {
	Name     string
	From, To admin.Deployment
	Changes  []change
	Rows     []row
	Current  uint64
}

func (c *Console) handleDiff(w http.ResponseWriter, r *http.Request, s *session) {
	a, ctx, name, q := c.apiFor(r, s), r.Context(), r.PathValue("name"), r.URL.Query()
	var from, to uint64
	for _, f := range []struct {
		field string
		dst   *uint64
	}{{"from", &from}, {"to", &to}} {
		v := q.Get(f.field)
		if v == "" {
			continue
		}
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil || n == 0 {
			c.fail(w, r, s, http.StatusBadRequest, f.field+" "+strconv.Quote(v)+": want a version number (1, 2, ...)")
			return
		}
		*f.dst = n
	}
	res, err := a.Diff(ctx, name, from, to)
	if err != nil {
		c.fail(w, r, s, apiStatus(err), "Could not compare versions: "+apiMessage(err))
		return
	}
	data := diffData{Name: name, Changes: changesOf(res.Changes)}
	if res.From != 0 {
		if data.From, err = a.Version(ctx, name, res.From); err != nil {
			c.fail(w, r, s, apiStatus(err), "Could not read version "+strconv.FormatUint(res.From, 10)+": "+apiMessage(err))
			return
		}
	}
	if data.To, err = a.Version(ctx, name, res.To); err != nil {
		c.fail(w, r, s, apiStatus(err), "Could not read version "+strconv.FormatUint(res.To, 10)+": "+apiMessage(err))
		return
	}
	data.Rows = sideBySide(data.From.Config(), data.To.Config(), res.Changes)
	if cur, err := a.Status(ctx, name); err == nil {
		data.Current = cur.Version
	}
	c.render(w, r, http.StatusOK, "diff", &page{Title: name + " diff", Nav: "overview", User: s, Data: data})
}

// laterPage is a page other issues will fill.
type laterPage struct {
	Slug, Title, What string
}

var later = []laterPage{
	{"services", "Services", "Each service's configuration (upstream settings, timeouts, headers) with its history, a side-by-side diff and one-click restore, like deployments have here."},
	{"changesets", "Change sets", "Changes that span several deployments and services, written together and undone together: their history, diff and one-click undo."},
}

func (c *Console) handleLater(w http.ResponseWriter, r *http.Request, s *session) {
	i := slices.IndexFunc(later, func(p laterPage) bool { return Prefix+p.Slug == r.URL.Path })
	p := later[i]
	c.render(w, r, http.StatusOK, "later", &page{Title: p.Title, Nav: p.Slug, User: s, Data: p})
}
