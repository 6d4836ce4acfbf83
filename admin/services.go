package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/a8e2c47e/switchback/configstore"
	"github.com/a8e2c47e/switchback/gateway"
)

// Services: versioned configuration of the services behind the gateway,
// and change sets across services and deployments.
//
//	GET    /api/v1/services
//	GET    /api/v1/services/{name}                  current document; ETag "<version>"; If-None-Match → 304
//	GET    /api/v1/services/{name}?wait=60s&after=N long poll: answers when a version > N exists, or 304 at the timeout
//	GET    /api/v1/services/{name}?follow=1         server-sent events, one per new version (Last-Event-ID or after=N resumes)
//	       ...&instance=ID                          the document instance ID runs (the gray one if it is in the gray release)
//	PUT    /api/v1/services/{name}                  {"config": {...}, "reason"}
//	PATCH  /api/v1/services/{name}                  {"patch": {...}, "reason"}  RFC 7396 merge patch
//	GET    /api/v1/services/{name}/history?limit=N
//	GET    /api/v1/services/{name}/versions/{version}
//	GET    /api/v1/services/{name}/diff?from=V&to=W
//	POST   /api/v1/services/{name}/restore          {"version", "reason"}
//	POST   /api/v1/services/{name}/rollback         {"reason"}
//	POST   /api/v1/services/{name}/gray             {"patch", "percent", "reason"}: instances bucketed below percent get the patched document
//	POST   /api/v1/services/{name}/gray/promote     {"reason"}: the gray document becomes the main one
//	POST   /api/v1/services/{name}/gray/abandon     {"reason"}: the gray release ends
//	GET    /api/v1/services/{name}/schema
//	PUT    /api/v1/services/{name}/schema           {"schema": {...}}; null removes it
//	POST   /api/v1/changesets                       {"reason", "changes": [{"service": "payments", "patch": {...}}, {"deployment": "shop", "patch": {...}}]}
//	GET    /api/v1/changesets?limit=N
//	GET    /api/v1/changesets/{id}
//	POST   /api/v1/changesets/{id}/revert           {"reason", "force"}
//
// Every service answer carries X-Switchback-Config-Version. A token whose
// tokens-file line ends with services=a,b reads and writes only those
// services, and only change sets that touch nothing else.

// ConfigVersionHeader carries the version of a service document.
const ConfigVersionHeader = "X-Switchback-Config-Version"

// MaxWait is the longest long poll.
const MaxWait = 2 * time.Minute

// Service is one version of a service's configuration as the API shows it.
type Service struct {
	Name    string           `json:"name"`
	Version uint64           `json:"version"`
	Config  json.RawMessage  `json:"config"`
	Meta    configstore.Meta `json:"meta"`
	// Gray is the gray release running, in answers without ?instance=.
	Gray *configstore.Gray `json:"gray,omitempty"`
	// Instance is the ?instance= asked for; Config is then the document
	// that instance runs, and GrayApplied says whether it is the gray one.
	Instance    string `json:"instance,omitempty"`
	GrayApplied bool   `json:"gray_applied,omitempty"`
}

// ServiceList is the answer to GET /api/v1/services.
type ServiceList struct {
	Services []Service `json:"services"`
}

// ChangeSetList is the answer to GET /api/v1/changesets.
type ChangeSetList struct {
	ChangeSets []configstore.ChangeSet `json:"changesets"`
}

// SchemaBody is the answer to GET .../schema and the body of its PUT.
type SchemaBody struct {
	Schema json.RawMessage `json:"schema"`
}

type (
	servicePutRequest struct {
		Config json.RawMessage `json:"config"`
		writeFields
	}
	servicePatchRequest struct {
		Patch json.RawMessage `json:"patch"`
		writeFields
	}
	schemaRequest struct {
		Schema json.RawMessage `json:"schema"`
		writeFields
	}
	changeSetRequest struct {
		Changes []configstore.ChangeSpec `json:"changes"`
		writeFields
	}
	grayRequest struct {
		Patch   json.RawMessage `json:"patch"`
		Percent *float64        `json:"percent"`
		writeFields
	}
	revertRequest struct {
		Force bool `json:"force,omitempty"`
		writeFields
	}
)

func serviceView(d configstore.ServiceDoc) Service {
	return Service{Name: d.Name, Version: d.Meta.Version, Config: d.Config, Meta: d.Meta, Gray: d.Gray}
}

// instanceView is d as instance runs it: with the gray document when the
// instance is in the gray release.
func instanceView(d configstore.ServiceDoc, instance string) Service {
	if instance == "" {
		return serviceView(d)
	}
	cfg, gray := d.For(instance)
	return Service{Name: d.Name, Version: d.Meta.Version, Config: cfg, Meta: d.Meta, Instance: instance, GrayApplied: gray}
}

// maxInstance bounds an instance id.
const maxInstance = 256

func parseInstance(v string) *apiError {
	if len(v) > maxInstance || strings.ContainsFunc(v, func(r rune) bool { return r < ' ' || r == 0x7f }) {
		return &apiError{status: http.StatusBadRequest, field: "instance",
			msg: fmt.Sprintf("instance: want an id of at most %d printable characters, like a host name or pod name", maxInstance)}
	}
	return nil
}

func (s *Server) serviceRoutes() {
	const sv = "/api/v1/services/{name}"
	s.Handle("GET /api/v1/services", http.HandlerFunc(s.handleServiceList), RoleViewer)
	s.Handle("GET "+sv, http.HandlerFunc(s.handleServiceGet), RoleViewer)
	s.Handle("PUT "+sv, http.HandlerFunc(s.handleServicePut), RoleOperator)
	s.Handle("PATCH "+sv, http.HandlerFunc(s.handleServicePatch), RoleOperator)
	s.Handle("GET "+sv+"/history", http.HandlerFunc(s.handleServiceHistory), RoleViewer)
	s.Handle("GET "+sv+"/versions/{version}", http.HandlerFunc(s.handleServiceVersion), RoleViewer)
	s.Handle("GET "+sv+"/diff", http.HandlerFunc(s.handleServiceDiff), RoleViewer)
	s.Handle("POST "+sv+"/restore", http.HandlerFunc(s.handleServiceRestore), RoleOperator)
	s.Handle("POST "+sv+"/rollback", http.HandlerFunc(s.handleServiceRollback), RoleOperator)
	s.Handle("POST "+sv+"/gray", http.HandlerFunc(s.handleGrayStart), RoleOperator)
	s.Handle("POST "+sv+"/gray/promote", http.HandlerFunc(s.handleGrayPromote), RoleOperator)
	s.Handle("POST "+sv+"/gray/abandon", http.HandlerFunc(s.handleGrayAbandon), RoleOperator)
	s.Handle("GET "+sv+"/schema", http.HandlerFunc(s.handleSchemaGet), RoleViewer)
	s.Handle("PUT "+sv+"/schema", http.HandlerFunc(s.handleSchemaPut), RoleOperator)
	s.Handle("POST /api/v1/changesets", http.HandlerFunc(s.handleChangeSetApply), RoleOperator)
	s.Handle("GET /api/v1/changesets", http.HandlerFunc(s.handleChangeSetList), RoleViewer)
	s.Handle("GET /api/v1/changesets/{id}", http.HandlerFunc(s.handleChangeSetGet), RoleViewer)
	s.Handle("POST /api/v1/changesets/{id}/revert", http.HandlerFunc(s.handleChangeSetRevert), RoleOperator)
}

// parseServicesScope reads the fourth field of a tokens-file line.
func parseServicesScope(f string) ([]string, error) {
	list, ok := strings.CutPrefix(f, "services=")
	if !ok || list == "" {
		return nil, fmt.Errorf("fourth field %q: want services=NAME[,NAME...], the services the token may use", f)
	}
	names := strings.Split(list, ",")
	for _, n := range names {
		if !gateway.ValidName(n) {
			return nil, fmt.Errorf("service %q in %s: %s", n, f, gateway.NameRule)
		}
	}
	return names, nil
}

// scopedPath reports whether a token limited to some services may use
// path at all: the service and change set routes, and health. Deployments,
// their events and the metrics are other teams' business.
func scopedPath(path string) bool {
	for _, p := range []string{"/api/v1/services", "/api/v1/changesets"} {
		if path == p || strings.HasPrefix(path, p+"/") {
			return true
		}
	}
	return path == "/healthz"
}

// mayService reports whether p may use service name.
func (p Principal) mayService(name string) bool {
	return p.Services == nil || slices.Contains(p.Services, name)
}

func scopeError(p Principal, what string) *apiError {
	return &apiError{status: http.StatusForbidden, field: "name",
		msg: fmt.Sprintf("%s may use only services %s, not %s", p.Name, strings.Join(p.Services, ", "), what)}
}

// inScope answers 403 when the caller may not use the request's service.
func (s *Server) inScope(w http.ResponseWriter, r *http.Request) bool {
	p, _ := Caller(r.Context())
	if name := r.PathValue("name"); !p.mayService(name) {
		writeError(w, scopeError(p, "service "+strconv.Quote(name)))
		return false
	}
	return true
}

// serviceErr maps the store's service errors to answers that say
// "service" where classify would say "deployment".
func serviceErr(err error) error {
	var (
		ce  *configstore.ConflictError
		rce *configstore.RevertConflictError
		nf  *configstore.NotFoundError
	)
	switch {
	case errors.As(err, &nf) && nf.Kind == "change set":
		return &apiError{status: http.StatusNotFound, field: "id", msg: nf.Error()}
	case errors.As(err, &ce) && ce.Service:
		return &apiError{status: http.StatusConflict, field: "If-Match", msg: ce.Error() + "; read the service again and retry"}
	case errors.As(err, &rce):
		field := "force"
		if rce.RevertedBy != "" {
			field = "id"
		}
		return &apiError{status: http.StatusConflict, field: field, msg: rce.Error()}
	}
	return err
}

func writeService(w http.ResponseWriter, d configstore.ServiceDoc, instance string) {
	v := strconv.FormatUint(d.Meta.Version, 10)
	w.Header().Set("ETag", strconv.Quote(v))
	w.Header().Set(ConfigVersionHeader, v)
	writeJSON(w, http.StatusOK, instanceView(d, instance))
}

func (s *Server) handleServiceList(w http.ResponseWriter, r *http.Request) {
	docs, err := s.store.ListServices(r.Context())
	if err != nil {
		s.writeErr(w, err)
		return
	}
	p, _ := Caller(r.Context())
	out := ServiceList{Services: []Service{}}
	for _, d := range docs {
		if p.mayService(d.Name) {
			out.Services = append(out.Services, serviceView(d))
		}
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) handleServiceGet(w http.ResponseWriter, r *http.Request) {
	if !s.inScope(w, r) {
		return
	}
	name, q := r.PathValue("name"), r.URL.Query()
	// Checked before anything else: the name labels the watcher metrics.
	if err := gateway.CheckName("name", name); err != nil {
		s.writeErr(w, err)
		return
	}
	instance := q.Get("instance")
	if aerr := parseInstance(instance); aerr != nil {
		writeError(w, aerr)
		return
	}
	var after uint64
	if v := q.Get("after"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			writeError(w, &apiError{status: http.StatusBadRequest, field: "after", msg: fmt.Sprintf("after %q: want a version number (0, 1, 2, ...)", v)})
			return
		}
		after = n
	}
	switch follow := q.Get("follow"); follow {
	case "", "0", "false":
	case "1", "true":
		if id := r.Header.Get("Last-Event-ID"); id != "" {
			if n, err := strconv.ParseUint(id, 10, 64); err == nil {
				after = max(after, n)
			}
		}
		s.streamService(w, r, name, after, instance)
		return
	default:
		writeError(w, &apiError{status: http.StatusBadRequest, field: "follow", msg: fmt.Sprintf("follow %q: want 1 or 0", follow)})
		return
	}
	if v := q.Get("wait"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 || d > MaxWait {
			writeError(w, &apiError{status: http.StatusBadRequest, field: "wait",
				msg: fmt.Sprintf("wait %q: want a duration above 0 and at most %s, like 60s", v, MaxWait)})
			return
		}
		s.longPoll(w, r, name, after, d, instance)
		return
	}
	doc, err := s.store.GetService(r.Context(), name)
	if err != nil {
		s.writeErr(w, err)
		return
	}
	if inm := r.Header.Get("If-None-Match"); inm != "" {
		if v, aerr := parseIfMatch(inm); aerr == nil && v == doc.Meta.Version {
			w.Header().Set("ETag", strconv.Quote(strconv.FormatUint(v, 10)))
			w.Header().Set(ConfigVersionHeader, strconv.FormatUint(v, 10))
			w.WriteHeader(http.StatusNotModified)
			return
		}
	}
	writeService(w, doc, instance)
}

// longPoll answers with the first version above after, or 304 when none is
// written within d.
func (s *Server) longPoll(w http.ResponseWriter, r *http.Request, name string, after uint64, d time.Duration, instance string) {
	s.svcMetrics.watching(name, 1)
	defer s.svcMetrics.watching(name, -1)
	ctx, cancel := context.WithTimeout(r.Context(), d)
	defer cancel()
	// Subscribe before reading, so a version written in between is not
	// missed.
	sub := s.hub.subscribe(name)
	defer s.hub.unsubscribe(name, sub)
	doc, err := s.store.GetService(ctx, name)
	switch {
	case err == nil && doc.Meta.Version > after:
		writeService(w, doc, instance)
		return
	case err != nil && !errors.Is(err, configstore.ErrNotFound):
		s.writeErr(w, err)
		return
	}
	for {
		select {
		case doc := <-sub.ch:
			if doc.Meta.Version > after {
				s.svcMetrics.delivered(doc, s.now())
				writeService(w, doc, instance)
				return
			}
		case <-ctx.Done():
			if r.Context().Err() == nil {
				w.Header().Set(ConfigVersionHeader, strconv.FormatUint(after, 10))
				w.WriteHeader(http.StatusNotModified)
			}
			return
		}
	}
}

// streamService sends one server-sent event per version above after, id
// the version and data the Service JSON, until the client leaves.
func (s *Server) streamService(w http.ResponseWriter, r *http.Request, name string, after uint64, instance string) {
	s.svcMetrics.watching(name, 1)
	defer s.svcMetrics.watching(name, -1)
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	if rc.Flush() != nil {
		return
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	docs := make(chan configstore.ServiceDoc, 16)
	done := make(chan error, 1)
	go func() {
		done <- s.store.FollowService(ctx, name, after, func(d configstore.ServiceDoc) error {
			select {
			case docs <- d:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
	}()
	defer func() {
		cancel()
		<-done
	}()
	keepAlive := time.NewTicker(15 * time.Second)
	defer keepAlive.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case err := <-done:
			done <- err // for the deferred wait
			fmt.Fprintf(w, "event: error\ndata: %q\n\n", err.Error())
			_ = rc.Flush()
			return
		case d := <-docs:
			b, err := json.Marshal(instanceView(d, instance))
			if err != nil {
				return
			}
			if _, err := fmt.Fprintf(w, "id: %d\nevent: version\ndata: %s\n\n", d.Meta.Version, b); err != nil || rc.Flush() != nil {
				return
			}
			s.svcMetrics.delivered(d, s.now())
		case <-keepAlive.C:
			if _, err := fmt.Fprint(w, ": keep-alive\n\n"); err != nil || rc.Flush() != nil {
				return
			}
		}
	}
}

func (s *Server) handleServiceHistory(w http.ResponseWriter, r *http.Request) {
	if !s.inScope(w, r) {
		return
	}
	limit := 50
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			writeError(w, &apiError{status: http.StatusBadRequest, field: "limit", msg: fmt.Sprintf("limit %q: want a whole number from 1 to 1000", v)})
			return
		}
		limit = n
	}
	metas, err := s.store.ServiceHistory(r.Context(), r.PathValue("name"), limit)
	if err != nil {
		s.writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, History{Name: r.PathValue("name"), History: metas})
}

func (s *Server) handleServiceVersion(w http.ResponseWriter, r *http.Request) {
	if !s.inScope(w, r) {
		return
	}
	v, aerr := parseVersion("version", r.PathValue("version"))
	if aerr != nil {
		writeError(w, aerr)
		return
	}
	doc, err := s.store.ServiceVersion(r.Context(), r.PathValue("name"), v)
	if err != nil {
		s.writeErr(w, notFoundField(err, "version"))
		return
	}
	writeService(w, doc, "")
}

func (s *Server) handleServiceDiff(w http.ResponseWriter, r *http.Request) {
	if !s.inScope(w, r) {
		return
	}
	ctx, name := r.Context(), r.PathValue("name")
	from, to, aerr := diffRange(r)
	if aerr != nil {
		writeError(w, aerr)
		return
	}
	var toDoc configstore.ServiceDoc
	var err error
	if to == 0 {
		toDoc, err = s.store.GetService(ctx, name)
	} else {
		toDoc, err = s.store.ServiceVersion(ctx, name, to)
	}
	if err != nil {
		s.writeErr(w, notFoundField(err, "to"))
		return
	}
	to = toDoc.Meta.Version
	if r.URL.Query().Get("from") == "" && to > 1 {
		from = to - 1
	}
	var fromCfg json.RawMessage
	if from != 0 {
		doc, err := s.store.ServiceVersion(ctx, name, from)
		if err != nil {
			s.writeErr(w, notFoundField(err, "from"))
			return
		}
		fromCfg = doc.Config
	}
	changes := configstore.DiffJSON(fromCfg, toDoc.Config)
	if changes == nil {
		changes = []configstore.Change{}
	}
	writeJSON(w, http.StatusOK, DiffResult{Name: name, From: from, To: to, Changes: changes})
}

func (s *Server) handleSchemaGet(w http.ResponseWriter, r *http.Request) {
	if !s.inScope(w, r) {
		return
	}
	sc, err := s.store.ServiceSchema(r.Context(), r.PathValue("name"))
	if err != nil {
		s.writeErr(w, notFoundField(err, "schema"))
		return
	}
	writeJSON(w, http.StatusOK, SchemaBody{Schema: sc})
}

// beginService is begin for a service route: the audit record names the
// service, and a token scoped to other services is refused.
func (s *Server) beginService(w http.ResponseWriter, r *http.Request, action string, body reasoned) (*mutation, bool) {
	m, ok := s.begin(w, r, action, "", body)
	if !ok {
		return nil, false
	}
	m.rec.Service, m.rec.Deployment = m.rec.Deployment, ""
	p, _ := Caller(r.Context())
	if !p.mayService(m.rec.Service) {
		s.fail(w, m, scopeError(p, "service "+strconv.Quote(m.rec.Service)))
		return nil, false
	}
	return m, true
}

func (s *Server) finishService(w http.ResponseWriter, m *mutation, res configstore.ServiceResult, err error) {
	if err != nil {
		s.fail(w, m, serviceErr(err))
		return
	}
	m.rec.Version, m.rec.From = res.Doc.Meta.Version, res.Prev.Meta.Version
	m.rec.Changes = configstore.DiffJSON(res.Prev.Config, res.Doc.Config)
	m.rec.Status = http.StatusOK
	s.audit(m.rec)
	if res.Wrote {
		s.svcMetrics.wrote(res.Doc.Name)
		s.serviceEvent(res.Doc, m.rec.Action)
	}
	writeService(w, res.Doc, "")
}

func (s *Server) handleServicePut(w http.ResponseWriter, r *http.Request) {
	var req servicePutRequest
	m, ok := s.beginService(w, r, "put", &req)
	if !ok {
		return
	}
	if len(req.Config) == 0 {
		s.fail(w, m, &apiError{status: http.StatusBadRequest, field: "config",
			msg: `config: want the whole document, for example {"config": {"db": {"pool": {"max": 20}}}}`})
		return
	}
	res, err := s.store.PutService(r.Context(), m.rec.Service, req.Config, m.rec.IfMatch, m.meta)
	s.finishService(w, m, res, err)
}

func (s *Server) handleServicePatch(w http.ResponseWriter, r *http.Request) {
	var req servicePatchRequest
	m, ok := s.beginService(w, r, "patch", &req)
	if !ok {
		return
	}
	if len(req.Patch) == 0 {
		s.fail(w, m, &apiError{status: http.StatusBadRequest, field: "patch",
			msg: `patch: want an RFC 7396 merge patch object, for example {"patch": {"db": {"pool": {"max": 50}}}}`})
		return
	}
	res, err := s.store.PatchService(r.Context(), m.rec.Service, req.Patch, m.rec.IfMatch, m.meta)
	s.finishService(w, m, res, err)
}

func (s *Server) handleServiceRestore(w http.ResponseWriter, r *http.Request) {
	var req restoreRequest
	m, ok := s.beginService(w, r, "restore", &req)
	if !ok {
		return
	}
	if req.Version == 0 {
		s.fail(w, m, &apiError{status: http.StatusBadRequest, field: "version",
			msg: `version: want the version to restore, for example {"version": 6}`})
		return
	}
	m.rec.Target = strconv.FormatUint(req.Version, 10)
	res, err := s.store.RestoreService(r.Context(), m.rec.Service, req.Version, m.rec.IfMatch, m.meta)
	s.finishService(w, m, res, notFoundField(err, "version"))
}

func (s *Server) handleServiceRollback(w http.ResponseWriter, r *http.Request) {
	var req flipRequest
	m, ok := s.beginService(w, r, "rollback", &req)
	if !ok {
		return
	}
	res, err := s.store.RollbackService(r.Context(), m.rec.Service, m.rec.IfMatch, m.meta)
	s.finishService(w, m, res, notFoundField(err, "version"))
}

func (s *Server) handleSchemaPut(w http.ResponseWriter, r *http.Request) {
	var req schemaRequest
	m, ok := s.beginService(w, r, "schema", &req)
	if !ok {
		return
	}
	if len(req.Schema) == 0 {
		s.fail(w, m, &apiError{status: http.StatusBadRequest, field: "schema",
			msg: `schema: want a JSON Schema, for example {"schema": {"type": "object"}}, or null to remove it`})
		return
	}
	if err := s.store.SetServiceSchema(r.Context(), m.rec.Service, req.Schema, m.meta.Author); err != nil {
		s.fail(w, m, err)
		return
	}
	m.rec.Status = http.StatusOK
	s.audit(m.rec)
	writeJSON(w, http.StatusOK, SchemaBody{Schema: req.Schema})
}

// mayChangeSet reports whether p may apply or revert a change set with
// these targets: a scoped token only one that touches its services alone.
func mayChangeSet(p Principal, services, deployments []string) *apiError {
	if p.Services == nil {
		return nil
	}
	for _, d := range deployments {
		return scopeError(p, "deployment "+strconv.Quote(d))
	}
	for _, n := range services {
		if !p.mayService(n) {
			return scopeError(p, "service "+strconv.Quote(n))
		}
	}
	return nil
}

func targets(entries []configstore.ChangeSetEntry) (services, deployments []string) {
	for _, e := range entries {
		if e.Service != "" {
			services = append(services, e.Service)
		} else {
			deployments = append(deployments, e.Deployment)
		}
	}
	return services, deployments
}

func (s *Server) handleChangeSetApply(w http.ResponseWriter, r *http.Request) {
	var req changeSetRequest
	m, ok := s.begin(w, r, "changeset", "", &req)
	if !ok {
		return
	}
	p, _ := Caller(r.Context())
	var svcs, deps []string
	for _, c := range req.Changes {
		if c.Service != "" {
			svcs = append(svcs, c.Service)
		}
		if c.Deployment != "" {
			deps = append(deps, c.Deployment)
		}
	}
	if aerr := mayChangeSet(p, svcs, deps); aerr != nil {
		s.fail(w, m, aerr)
		return
	}
	cs, err := s.store.ApplyChangeSet(r.Context(), req.Changes, m.meta)
	s.finishChangeSet(w, m, cs, err)
}

func (s *Server) finishChangeSet(w http.ResponseWriter, m *mutation, cs configstore.ChangeSet, err error) {
	if err != nil {
		s.fail(w, m, serviceErr(err))
		return
	}
	m.rec.ChangeSet, m.rec.Status = cs.ID, http.StatusOK
	s.audit(m.rec)
	s.changeSetEvents(cs)
	writeJSON(w, http.StatusOK, cs)
}

func (s *Server) handleChangeSetList(w http.ResponseWriter, r *http.Request) {
	limit := 50
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			writeError(w, &apiError{status: http.StatusBadRequest, field: "limit", msg: fmt.Sprintf("limit %q: want a whole number from 1 to 1000", v)})
			return
		}
		limit = n
	}
	list, err := s.store.ListChangeSets(r.Context(), limit)
	if err != nil {
		s.writeErr(w, err)
		return
	}
	p, _ := Caller(r.Context())
	out := ChangeSetList{ChangeSets: []configstore.ChangeSet{}}
	for _, cs := range list {
		if mayChangeSetOf(p, cs) == nil {
			out.ChangeSets = append(out.ChangeSets, cs)
		}
	}
	writeJSON(w, http.StatusOK, out)
}

func mayChangeSetOf(p Principal, cs configstore.ChangeSet) *apiError {
	svcs, deps := targets(cs.Entries)
	return mayChangeSet(p, svcs, deps)
}

func (s *Server) handleChangeSetGet(w http.ResponseWriter, r *http.Request) {
	cs, err := s.store.GetChangeSet(r.Context(), r.PathValue("id"))
	if err != nil {
		s.writeErr(w, serviceErr(err))
		return
	}
	p, _ := Caller(r.Context())
	if aerr := mayChangeSetOf(p, cs); aerr != nil {
		writeError(w, aerr)
		return
	}
	writeJSON(w, http.StatusOK, cs)
}

func (s *Server) handleChangeSetRevert(w http.ResponseWriter, r *http.Request) {
	var req revertRequest
	id := r.PathValue("id")
	m, ok := s.begin(w, r, "changeset-revert", id, &req)
	if !ok {
		return
	}
	p, _ := Caller(r.Context())
	if p.Services != nil {
		cs, err := s.store.GetChangeSet(r.Context(), id)
		if err != nil {
			s.fail(w, m, serviceErr(err))
			return
		}
		if aerr := mayChangeSetOf(p, cs); aerr != nil {
			s.fail(w, m, aerr)
			return
		}
	}
	cs, err := s.store.RevertChangeSet(r.Context(), id, req.Force, m.meta)
	s.finishChangeSet(w, m, cs, err)
}

// serviceEvent appends an event for a service version to the events log.
// A failure is logged, not returned: the version is written either way.
func (s *Server) serviceEvent(d configstore.ServiceDoc, action string) {
	s.appendEvent(configstore.Event{Deployment: d.Name, Kind: "service_" + action, Subject: "service:" + d.Name,
		Version: d.Meta.Version, Instance: s.instance, Reason: d.Meta.Summary})
}

// changeSetEvents appends one event per target of a change set.
func (s *Server) changeSetEvents(cs configstore.ChangeSet) {
	kind := "changeset_applied"
	if cs.RevertOf != "" {
		kind = "changeset_reverted"
	}
	for _, e := range cs.Entries {
		name, what := e.Service, "service:"
		if name == "" {
			name, what = e.Deployment, "deployment:"
		}
		if e.Service != "" {
			s.svcMetrics.wrote(e.Service)
		}
		s.appendEvent(configstore.Event{Deployment: name, Kind: kind, Subject: what + name + " changeset:" + cs.ID,
			Version: e.To, Instance: s.instance, Reason: e.Summary})
	}
}

func (s *Server) appendEvent(ev configstore.Event) {
	// The request's own context may end as soon as it is answered.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := s.store.AppendEvent(ctx, ev); err != nil {
		s.log.Warn("append event", zap.String("kind", ev.Kind), zap.Error(err))
	}
}

func (s *Server) handleGrayStart(w http.ResponseWriter, r *http.Request) {
	var req grayRequest
	m, ok := s.beginService(w, r, "gray", &req)
	if !ok {
		return
	}
	if len(req.Patch) == 0 {
		s.fail(w, m, &apiError{status: http.StatusBadRequest, field: "patch",
			msg: `patch: want an RFC 7396 merge patch for the gray document, for example {"patch": {"db": {"pool": {"max": 50}}}, "percent": 10}`})
		return
	}
	if req.Percent == nil {
		s.fail(w, m, &apiError{status: http.StatusBadRequest, field: "percent",
			msg: `percent: want the percentage of instances to get the gray document, for example {"percent": 10}`})
		return
	}
	m.rec.Target = strconv.FormatFloat(*req.Percent, 'f', -1, 64) + "%"
	res, err := s.store.StartGray(r.Context(), m.rec.Service, req.Patch, *req.Percent, m.rec.IfMatch, m.meta)
	s.finishService(w, m, res, err)
}

func (s *Server) handleGrayPromote(w http.ResponseWriter, r *http.Request) {
	var req flipRequest
	m, ok := s.beginService(w, r, "gray_promote", &req)
	if !ok {
		return
	}
	res, err := s.store.PromoteGray(r.Context(), m.rec.Service, m.rec.IfMatch, m.meta)
	s.finishService(w, m, res, notFoundField(err, "gray"))
}

func (s *Server) handleGrayAbandon(w http.ResponseWriter, r *http.Request) {
	var req flipRequest
	m, ok := s.beginService(w, r, "gray_abandon", &req)
	if !ok {
		return
	}
	res, err := s.store.AbandonGray(r.Context(), m.rec.Service, m.rec.IfMatch, m.meta)
	s.finishService(w, m, res, notFoundField(err, "gray"))
}
