package admin

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"

	"github.com/a8e2c47e/switchback/configstore"
	"github.com/a8e2c47e/switchback/gateway"
)

// Deployment is one deployment as the API shows it: its current document,
// the metadata of the version that made it, the pools retained as
// rollback targets, and, in answers about the current state, the store's
// health and (in answers to reads) the version each instance applied.
type Deployment struct {
	Name    string                  `json:"name"`
	Version uint64                  `json:"version"`
	Pools   map[string]gateway.Pool `json:"pools"`
	Weights map[string]float64      `json:"weights"`
	Flags   map[string]gateway.Flag `json:"flags"`
	Meta    configstore.Meta        `json:"meta"`
	// Retained maps each pool that is a rollback target to when its
	// retention ends: state beside the document, not part of it.
	Retained map[string]time.Time `json:"retained,omitempty"`
	// Store is "ok" or says what is wrong with the config store.
	Store string `json:"store,omitempty"`
	// Instances maps gateway instances to the version they have applied,
	// where known.
	Instances map[string]uint64 `json:"instances,omitempty"`
	// Guard is the deployment's fallback policy; nil: no guard configured.
	Guard *gateway.Guard `json:"guard,omitempty"`
	// Environment is the document's mark: production (empty), staging,
	// development or test.
	Environment string `json:"environment,omitempty"`
}

// Config returns the routing document the deployment shows.
func (d Deployment) Config() gateway.Config {
	return gateway.Config{Name: d.Name, Version: d.Version, Pools: d.Pools, Weights: d.Weights, Flags: d.Flags}
}

// DeploymentList is the answer to GET /api/v1/deployments.
type DeploymentList struct {
	Deployments []Deployment `json:"deployments"`
}

// History is the answer to GET .../history, newest version first.
type History struct {
	Name    string             `json:"name"`
	History []configstore.Meta `json:"history"`
}

// DiffResult is the answer to GET .../diff.
type DiffResult struct {
	Name    string               `json:"name"`
	From    uint64               `json:"from"`
	To      uint64               `json:"to"`
	Changes []configstore.Change `json:"changes"`
}

// Health is the answer to GET /healthz.
type Health struct {
	Store string `json:"store"`
	Error string `json:"error,omitempty"`
}

// Request bodies. Each embeds writeFields, so every mutation takes a reason.
type (
	writeFields struct {
		Reason string `json:"reason,omitempty"`
	}
	flipRequest struct {
		writeFields
	}
	// gatedFlipRequest is a flip's body: Force sends traffic past the
	// compatibility gate (recorded in the version's reason).
	gatedFlipRequest struct {
		Force bool `json:"force,omitempty"`
		writeFields
	}
	weightsRequest struct {
		Weights map[string]float64 `json:"weights"`
		Force   bool               `json:"force,omitempty"`
		writeFields
	}
	poolRequest struct {
		Upstreams []string `json:"upstreams"`
		Release   string   `json:"release,omitempty"`
		// Force replaces a pool that is the retained rollback target.
		Force bool `json:"force,omitempty"`
		writeFields
	}
	flagRequest struct {
		Percent *float64 `json:"percent"`
		writeFields
	}
	restoreRequest struct {
		Version uint64 `json:"version,omitempty"`
		// Before restores the last version written before this RFC 3339
		// time; BeforeVersion the one before that version.
		Before        string `json:"before,omitempty"`
		BeforeVersion uint64 `json:"before_version,omitempty"`
		writeFields
	}
)

func (f *writeFields) reason() string { return f.Reason }

type reasoned interface{ reason() string }

// clientHeader marks requests from the command-line client, whose versions
// are recorded with source "cli".
const clientHeader = "X-Switchback-Client"

func (s *Server) routes(reg *prometheus.Registry) {
	const d = "/api/v1/deployments/{name}"
	s.Handle("GET /api/v1/deployments", http.HandlerFunc(s.handleList), RoleViewer)
	s.Handle("GET "+d, http.HandlerFunc(s.handleGet), RoleViewer)
	s.Handle("POST "+d+"/flip", http.HandlerFunc(s.handleFlip), RoleOperator)
	s.Handle("PUT "+d+"/weights", http.HandlerFunc(s.handleWeights), RoleOperator)
	s.Handle("PUT "+d+"/pools/{pool}", http.HandlerFunc(s.handlePool), RoleOperator)
	s.Handle("PUT "+d+"/flags/{flag}", http.HandlerFunc(s.handleSetFlag), RoleOperator)
	s.Handle("DELETE "+d+"/flags/{flag}", http.HandlerFunc(s.handleDeleteFlag), RoleOperator)
	s.Handle("GET "+d+"/history", http.HandlerFunc(s.handleHistory), RoleViewer)
	s.Handle("GET "+d+"/versions/{version}", http.HandlerFunc(s.handleVersion), RoleViewer)
	s.Handle("GET "+d+"/diff", http.HandlerFunc(s.handleDiff), RoleViewer)
	s.Handle("POST "+d+"/restore", http.HandlerFunc(s.handleRestore), RoleOperator)
	s.Handle("POST "+d+"/rollback", http.HandlerFunc(s.handleRollback), RoleOperator)
	s.Handle("GET "+d+"/guard", http.HandlerFunc(s.handleGuard), RoleViewer)
	s.Handle("GET "+d+"/triage", http.HandlerFunc(s.handleTriage), RoleViewer)
	s.rolloutRoutes()
	s.releaseRollbackRoutes()
	s.serviceRoutes()
	s.releaseRoutes()
	s.drillRoutes()
	s.Handle("GET /api/v1/events", http.HandlerFunc(s.handleEvents), RoleViewer)
	s.Handle("GET /api/v1/databases", http.HandlerFunc(s.handleDatabases), RoleViewer)
	s.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}), RoleViewer)
	s.Handle("GET /healthz", http.HandlerFunc(s.handleHealth), RoleViewer)
}

// Reads.

func (s *Server) handleList(w http.ResponseWriter, r *http.Request) {
	names, err := s.store.List(r.Context())
	if err != nil {
		s.writeErr(w, err)
		return
	}
	out := DeploymentList{Deployments: make([]Deployment, 0, len(names))}
	for _, name := range names {
		doc, err := s.store.Get(r.Context(), name)
		if errors.Is(err, configstore.ErrNotFound) {
			continue // deleted since List
		}
		if err != nil {
			s.writeErr(w, err)
			return
		}
		out.Deployments = append(out.Deployments, s.state(r.Context(), doc, true))
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) handleGet(w http.ResponseWriter, r *http.Request) {
	doc, err := s.store.Get(r.Context(), r.PathValue("name"))
	if err != nil {
		s.writeErr(w, err)
		return
	}
	s.writeState(w, r.Context(), doc, true)
}

func (s *Server) handleHistory(w http.ResponseWriter, r *http.Request) {
	limit := 50
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			writeError(w, &apiError{status: http.StatusBadRequest, field: "limit",
				msg: fmt.Sprintf("limit %q: want a whole number from 1 to 1000", v)})
			return
		}
		limit = n
	}
	metas, err := s.store.History(r.Context(), r.PathValue("name"), limit)
	if err != nil {
		s.writeErr(w, err)
		return
	}
	if metas == nil {
		metas = []configstore.Meta{}
	}
	writeJSON(w, http.StatusOK, History{Name: r.PathValue("name"), History: metas})
}

func (s *Server) handleVersion(w http.ResponseWriter, r *http.Request) {
	v, aerr := parseVersion("version", r.PathValue("version"))
	if aerr != nil {
		writeError(w, aerr)
		return
	}
	doc, err := s.store.Version(r.Context(), r.PathValue("name"), v)
	if err != nil {
		s.writeErr(w, notFoundField(err, "version"))
		return
	}
	writeJSON(w, http.StatusOK, deployment(doc))
}

// diffRange reads a diff's ?from=V&to=W; 0 is "not given".
func diffRange(r *http.Request) (from, to uint64, aerr *apiError) {
	q := r.URL.Query()
	if v := q.Get("from"); v != "" {
		if from, aerr = parseVersion("from", v); aerr != nil {
			return 0, 0, aerr
		}
	}
	if v := q.Get("to"); v != "" {
		if to, aerr = parseVersion("to", v); aerr != nil {
			return 0, 0, aerr
		}
	}
	return from, to, nil
}

func (s *Server) handleDiff(w http.ResponseWriter, r *http.Request) {
	ctx, name := r.Context(), r.PathValue("name")
	from, to, aerr := diffRange(r)
	if aerr != nil {
		writeError(w, aerr)
		return
	}
	var toCfg gateway.Config
	if to == 0 {
		doc, err := s.store.Get(ctx, name)
		if err != nil {
			s.writeErr(w, err)
			return
		}
		to, toCfg = doc.Meta.Version, doc.Config
	} else {
		doc, err := s.store.Version(ctx, name, to)
		if err != nil {
			s.writeErr(w, notFoundField(err, "to"))
			return
		}
		toCfg = doc.Config
	}
	if r.URL.Query().Get("from") == "" && to > 1 {
		from = to - 1
	}
	// Version 0 is the empty document, so the diff of version 1 shows
	// everything it set.
	var fromCfg gateway.Config
	if from != 0 {
		doc, err := s.store.Version(ctx, name, from)
		if err != nil {
			s.writeErr(w, notFoundField(err, "from"))
			return
		}
		fromCfg = doc.Config
	}
	changes := configstore.Diff(fromCfg, toCfg)
	if changes == nil {
		changes = []configstore.Change{}
	}
	writeJSON(w, http.StatusOK, DiffResult{Name: name, From: from, To: to, Changes: changes})
}

func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	if err := s.storeHealth(r.Context()); err != nil {
		writeJSON(w, http.StatusServiceUnavailable, Health{Store: "unavailable", Error: err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, Health{Store: "ok"})
}

func parseVersion(field, v string) (uint64, *apiError) {
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil || n == 0 {
		return 0, &apiError{status: http.StatusBadRequest, field: field,
			msg: fmt.Sprintf("%s %q: want a version number (1, 2, ...)", field, v)}
	}
	return n, nil
}

// Mutations. Each handler decodes its body with begin, makes one store call
// and hands its Result to finish, which audits it and answers with the new
// state. A write without If-Match retries its compare-and-swap until it
// lands (the store does), except the relative ones (flip, rollback), which
// are pinned to the version they read: applied again on top of another
// writer's change, two flips would cancel out.

func (s *Server) handleFlip(w http.ResponseWriter, r *http.Request) {
	var req gatedFlipRequest
	m, ok := s.begin(w, r, "flip", "", &req)
	if !ok {
		return
	}
	checked, err := s.gate(r.Context(), m, req.Force, flip)
	if err != nil {
		s.fail(w, m, err)
		return
	}
	res, err := s.store.Update(r.Context(), m.rec.Deployment, cmp.Or(m.rec.IfMatch, checked), m.meta, flip, configstore.Pinned())
	s.finish(w, r, m, res, err)
}

// flip sends all traffic to the other pool of a two-pool deployment whose
// traffic is all on one pool. From a split (neither pool has it all) it
// refuses: "the other pool" is then a guess between promoting the canary
// and rolling it back, the two opposite moves, and in an incident the
// wrong one moves users into the failing pool. The refusal names both
// weights commands, so the operator picks one knowingly.
func flip(c *gateway.Config) error {
	if len(c.Pools) != 2 {
		names := sortedNames(c.Pools)
		return &gateway.FieldError{Field: "pools", Value: strings.Join(names, ", "),
			Want: fmt.Sprintf("flip needs exactly two pools, this deployment has %d; set weights instead", len(names))}
	}
	names := sortedNames(c.Pools)
	a, b := names[0], names[1]
	wa, wb := c.Weights[a], c.Weights[b]
	if wa != 100 && wb != 100 {
		return &gateway.FieldError{Field: "weights", Value: fmt.Sprintf("%s=%g %s=%g", a, wa, b, wb),
			Want: fmt.Sprintf("flip needs all traffic on one pool, and neither has it; say where it goes: "+
				"switchback weights %s %s=100 %s=0, or switchback weights %s %s=0 %s=100", c.Name, a, b, c.Name, a, b)}
	}
	to, from := a, b
	if wa == 100 {
		to, from = b, a
	}
	c.Weights = map[string]float64{to: 100, from: 0}
	return nil
}

func (s *Server) handleWeights(w http.ResponseWriter, r *http.Request) {
	var req weightsRequest
	m, ok := s.begin(w, r, "weights", "", &req)
	if !ok {
		return
	}
	if len(req.Weights) == 0 {
		s.fail(w, m, &apiError{status: http.StatusBadRequest, field: "weights",
			msg: `weights: want the percentage of every pool, for example {"blue": 70, "green": 30}`})
		return
	}
	setWeights := func(c *gateway.Config) error {
		c.Weights = req.Weights
		if err := c.Validate(); err != nil {
			return err // an unknown pool or a wrong sum says more than a missing one
		}
		return gateway.CheckWeightsCover(req.Weights, c.Pools)
	}
	checked, err := s.gate(r.Context(), m, req.Force, setWeights)
	if err != nil {
		s.fail(w, m, err)
		return
	}
	res, err := s.store.Update(r.Context(), m.rec.Deployment, cmp.Or(m.rec.IfMatch, checked), m.meta, setWeights)
	s.finish(w, r, m, res, err)
}

func (s *Server) handlePool(w http.ResponseWriter, r *http.Request) {
	var req poolRequest
	pool := r.PathValue("pool")
	m, ok := s.begin(w, r, "pool", pool, &req)
	if !ok {
		return
	}
	res, err := s.store.Edit(r.Context(), m.rec.Deployment, m.rec.IfMatch, m.meta, func(cur configstore.Document, c *gateway.Config) error {
		if _, ok := c.Pools[pool]; !ok {
			return &apiError{status: http.StatusNotFound, field: "pool",
				msg: fmt.Sprintf("pool %q not found; pools are %s", pool, strings.Join(sortedNames(c.Pools), ", "))}
		}
		// The pool traffic was flipped away from is the verified way back
		// for its retention; replacing it would silently remove that.
		if until, ok := cur.RetainedUntil(pool, s.now()); ok && !req.Force {
			return &apiError{status: http.StatusConflict, field: "pool",
				msg: fmt.Sprintf("pool %q is the rollback target until %s (retain); replacing it removes the way back: wait, or send \"force\": true",
					pool, until.Format(time.RFC3339))}
		}
		c.Pools[pool] = gateway.Pool{Upstreams: req.Upstreams, Release: req.Release}
		return nil
	})
	s.finish(w, r, m, res, err)
}

func (s *Server) handleSetFlag(w http.ResponseWriter, r *http.Request) {
	var req flagRequest
	flag := r.PathValue("flag")
	m, ok := s.begin(w, r, "flag", flag, &req)
	if !ok {
		return
	}
	if req.Percent == nil {
		s.fail(w, m, &apiError{status: http.StatusBadRequest, field: "percent",
			msg: `percent: want a number from 0 to 100, for example {"percent": 10}`})
		return
	}
	res, err := s.store.Update(r.Context(), m.rec.Deployment, m.rec.IfMatch, m.meta, func(c *gateway.Config) error {
		if c.Flags == nil {
			c.Flags = map[string]gateway.Flag{}
		}
		c.Flags[flag] = gateway.Flag{Percent: *req.Percent}
		return nil
	})
	s.finish(w, r, m, res, err)
}

func (s *Server) handleDeleteFlag(w http.ResponseWriter, r *http.Request) {
	var req writeFields
	flag := r.PathValue("flag")
	m, ok := s.begin(w, r, "delete-flag", flag, &req)
	if !ok {
		return
	}
	res, err := s.store.Update(r.Context(), m.rec.Deployment, m.rec.IfMatch, m.meta, func(c *gateway.Config) error {
		if _, ok := c.Flags[flag]; !ok {
			return &apiError{status: http.StatusNotFound, field: "flag", msg: fmt.Sprintf("flag %q not found", flag)}
		}
		delete(c.Flags, flag)
		return nil
	})
	s.finish(w, r, m, res, err)
}

func (s *Server) handleRestore(w http.ResponseWriter, r *http.Request) {
	var req restoreRequest
	m, ok := s.begin(w, r, "restore", "", &req)
	if !ok {
		return
	}
	v, err := s.restoreTarget(r.Context(), m.rec.Deployment, req)
	if err != nil {
		s.fail(w, m, err)
		return
	}
	m.rec.Target = strconv.FormatUint(v, 10)
	res, err := s.store.Restore(r.Context(), m.rec.Deployment, v, m.rec.IfMatch, m.meta)
	s.finish(w, r, m, res, notFoundField(err, restoreField(req)))
}

func (s *Server) handleRollback(w http.ResponseWriter, r *http.Request) {
	var req flipRequest
	m, ok := s.begin(w, r, "rollback", "", &req)
	if !ok {
		return
	}
	res, err := s.store.Rollback(r.Context(), m.rec.Deployment, m.rec.IfMatch, m.meta, configstore.Pinned())
	s.finish(w, r, m, res, notFoundField(err, "version"))
}

// mutation is one write in progress: its audit record so far and the
// metadata of the version it will write.
type mutation struct {
	rec  Record
	meta configstore.Meta
}

// begin decodes a mutation's body and headers. On failure it has answered
// and audited, and returns false.
func (s *Server) begin(w http.ResponseWriter, r *http.Request, action, target string, body reasoned) (*mutation, bool) {
	p, _ := Caller(r.Context())
	source := configstore.SourceAPI
	if strings.EqualFold(r.Header.Get(clientHeader), "cli") {
		source = configstore.SourceCLI
	}
	m := &mutation{rec: Record{
		Time:       s.now(),
		Who:        p.Name,
		Role:       p.Role,
		Remote:     r.RemoteAddr,
		Source:     source,
		Action:     action,
		Deployment: r.PathValue("name"),
		Target:     target,
	}}
	ifv, aerr := parseIfMatch(r.Header.Get("If-Match"))
	if aerr != nil {
		s.fail(w, m, aerr)
		return nil, false
	}
	m.rec.IfMatch = ifv
	if err := decodeBody(r, body); err != nil {
		s.fail(w, m, err)
		return nil, false
	}
	m.rec.Reason = body.reason()
	if n := utf8.RuneCountInString(m.rec.Reason); n > gateway.MaxReason {
		s.fail(w, m, &apiError{status: http.StatusBadRequest, field: "reason",
			msg: fmt.Sprintf("reason: %d characters, want at most %d", n, gateway.MaxReason)})
		return nil, false
	}
	m.meta = configstore.Meta{Time: m.rec.Time, Author: p.Name, Reason: m.rec.Reason, Source: source}
	return m, true
}

// finish audits the outcome of a mutation's store call and answers it.
// The Result says what the call replaced and whether it wrote, so the
// audit record needs no second read and no guess.
func (s *Server) finish(w http.ResponseWriter, r *http.Request, m *mutation, res configstore.Result, err error) {
	if err != nil {
		s.fail(w, m, err)
		return
	}
	m.rec.Version, m.rec.From = res.Doc.Meta.Version, res.Prev.Meta.Version
	m.rec.Changes = configstore.Diff(res.Prev.Config, res.Doc.Config)
	m.rec.Status = http.StatusOK
	s.audit(m.rec)
	s.writeState(w, r.Context(), res.Doc, false)
}

// fail audits a refused mutation and answers it.
func (s *Server) fail(w http.ResponseWriter, m *mutation, err error) {
	e := s.logged(err)
	m.rec.Status, m.rec.Error = e.status, e.msg
	s.audit(m.rec)
	writeError(w, e)
}

func (s *Server) writeErr(w http.ResponseWriter, err error) { writeError(w, s.logged(err)) }

// logged classifies err and logs the ones that are the server's problem.
func (s *Server) logged(err error) *apiError {
	e := classify(err)
	if e.status >= 500 {
		s.log.Error("admin request failed", zap.Int("status", e.status), zap.Error(err))
	}
	return e
}

func parseIfMatch(h string) (uint64, *apiError) {
	h = strings.TrimSpace(h)
	if h == "" || h == "*" {
		return 0, nil
	}
	v := h
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		v = v[1 : len(v)-1]
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil || n == 0 {
		return 0, &apiError{status: http.StatusBadRequest, field: "If-Match",
			msg: fmt.Sprintf(`If-Match %s: want one version, as in the ETag, like "7"`, h)}
	}
	return n, nil
}

// state is doc as the current state: with store health and, when
// instances is true, the version each instance applied (one more read,
// which answers to mutations skip: no instance has applied their version
// yet).
func (s *Server) state(ctx context.Context, doc configstore.Document, instances bool) Deployment {
	d := deployment(doc)
	// Retention that has ended stays in the stored state until the next
	// write; the current state shows only what still holds.
	d.Retained = nil
	for pool := range doc.Retained {
		if until, ok := doc.RetainedUntil(pool, s.now()); ok {
			if d.Retained == nil {
				d.Retained = map[string]time.Time{}
			}
			d.Retained[pool] = until
		}
	}
	d.Store = "ok"
	if s.storeHealthOpt != nil {
		if ok, err := s.storeHealthOpt(); !ok {
			d.Store = "unhealthy"
			if err != nil {
				d.Store += ": " + err.Error()
			}
		}
	}
	var applied map[string]uint64
	if instances {
		var err error
		if applied, err = s.store.Applied(ctx, d.Name); err != nil {
			s.log.Debug("read applied versions", zap.String("deployment", d.Name), zap.Error(err))
		}
	}
	if s.live != nil && s.instance != "" {
		if v, ok := s.live(d.Name); ok {
			if applied == nil {
				applied = map[string]uint64{}
			}
			applied[s.instance] = v
		}
	}
	if len(applied) > 0 {
		d.Instances = applied
	}
	return d
}

func (s *Server) writeState(w http.ResponseWriter, ctx context.Context, doc configstore.Document, instances bool) {
	w.Header().Set("ETag", strconv.Quote(strconv.FormatUint(doc.Meta.Version, 10)))
	writeJSON(w, http.StatusOK, s.state(ctx, doc, instances))
}

func deployment(doc configstore.Document) Deployment {
	c := doc.Config
	d := Deployment{Name: c.Name, Version: doc.Meta.Version, Pools: c.Pools, Weights: c.Weights, Flags: c.Flags, Meta: doc.Meta, Guard: c.Guard, Environment: c.Environment, Retained: doc.Retained}
	if d.Flags == nil {
		d.Flags = map[string]gateway.Flag{}
	}
	return d
}

func sortedNames[V any](m map[string]V) []string {
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	slices.Sort(names)
	return names
}
