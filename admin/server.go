// Package admin is Switchback's admin HTTP API, its security, and the
// command-line client that talks to it.
//
// The API lives under /api/v1 and speaks JSON both ways. Every request passes
// the same gate, in this order: the Host header must be allowed (DNS
// rebinding), a mutation must not be cross-origin (Sec-Fetch-Site / Origin),
// the caller must authenticate (bearer token, or a loopback address when no
// tokens file is configured) and hold the route's role, and a mutation must
// carry a JSON body. Only then does the route's handler run; a handler parses,
// validates, makes one store call and writes the new state.
//
//	GET    /api/v1/deployments
//	GET    /api/v1/deployments/{name}
//	POST   /api/v1/deployments/{name}/flip           {"reason"}
//	PUT    /api/v1/deployments/{name}/weights        {"weights": {"blue": 70, "green": 30}, "reason"}
//	PUT    /api/v1/deployments/{name}/pools/{pool}   {"upstreams": [...], "release", "force", "reason"}
//	PUT    /api/v1/deployments/{name}/flags/{flag}   {"percent", "reason"}
//	DELETE /api/v1/deployments/{name}/flags/{flag}   optional {"reason"}
//	GET    /api/v1/deployments/{name}/history?limit=N
//	GET    /api/v1/deployments/{name}/versions/{version}
//	GET    /api/v1/deployments/{name}/diff?from=V&to=W
//	POST   /api/v1/deployments/{name}/restore        {"version", "reason"}, or {"before": RFC 3339 time} or {"before_version": N} for the last version before
//	GET    /api/v1/deployments/{name}/triage         changes of the last hour, figures now and before, suspects and the commands that undo them
//	POST   /api/v1/deployments/{name}/rollback       {"reason"}
//	GET    /api/v1/deployments/{name}/guard          this instance's guard (guard.View): windows, breaches, health
//	POST   /api/v1/deployments/{name}/rollouts       {"target": "pool:green", "steps": [1, 10, 50, 100], "bake": "30m", "reason"}
//	GET    /api/v1/deployments/{name}/rollouts       the current or last rollout
//	POST   /api/v1/deployments/{name}/rollouts/pause   {"reason"}
//	POST   /api/v1/deployments/{name}/rollouts/resume  {"reason"}; the step's bake starts again
//	POST   /api/v1/deployments/{name}/rollouts/abort   {"reason"}; the target goes back where it was
//	GET    /api/v1/events?deployment=&limit=&follow=1 the events log; follow streams server-sent events
//	GET    /api/v1/drills?limit=&pattern=            drill results, newest first
//	POST   /api/v1/drills                           record one drill result (switchback drill does)
//	...    /api/v1/services/..., /api/v1/changesets/... service configuration and change sets (services.go)
//	...    /api/v1/releases/...                       releases: start, finish, list, show with timeline (releases.go)
//	GET    /api/v1/databases                         the gateway's databases: migration version, pending, last contract; never a DSN
//	GET    /metrics
//	GET    /healthz
//
// Mutations accept If-Match: "<version>" (quoted or bare) and answer 409 when
// it is stale; deployment responses carry ETag: "<version>". Without
// If-Match a change that loses a race to another writer is applied again on
// top of what won, until it lands or the request's time is up (503 with
// Retry-After); flip and rollback, which are relative, apply to the version
// they read and answer 409 if it moved.
//
// admin imports neither Caddy nor etcd: it reaches the store through
// configstore and the running gateway through the callbacks in Options, so
// caddymodule imports admin and never the other way round.
package admin

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/a8e2c47e/switchback/configstore"
	"github.com/a8e2c47e/switchback/control"
	"github.com/a8e2c47e/switchback/databases"
	"github.com/a8e2c47e/switchback/guard"
	"github.com/a8e2c47e/switchback/triage"
)

// Options configure a Server. Store is required; everything else has a
// default.
type Options struct {
	// Store holds the deployments' documents.
	Store *configstore.Store
	// Instance names this gateway instance in "instances".
	Instance string
	// Live reports the version this instance has applied for a deployment.
	Live func(name string) (version uint64, ok bool)
	// StoreHealth reports whether the store is usable (for example, whether
	// its watch is connected). Without it, health is probed with a List.
	StoreHealth func() (healthy bool, err error)
	// Tokens is the path of a tokens file, lines "NAME ROLE TOKEN_SHA256".
	// Empty means no tokens: only loopback clients are served.
	Tokens string
	// AllowedHosts are Host header names accepted besides localhost,
	// 127.0.0.1, [::1] and the address the request arrived on; any port.
	AllowedHosts []string
	// Registry receives the admin's metrics and is what /metrics serves.
	// Nil means a private registry.
	Registry *prometheus.Registry
	// Logger; nil means no logging.
	Logger *zap.Logger
	// Audit receives one record per mutation attempt that passed
	// authentication; nil means the record is logged at info level.
	Audit func(Record)
	// Now is the clock for audit records and version metadata.
	Now func() time.Time
	// Guard returns this instance's guard view of a deployment, served at
	// GET /api/v1/deployments/{name}/guard.
	Guard func(name string) (guard.View, bool)
	// Control does the rollout actions and records their events; nil
	// means one of the server's own on Store, as Instance, with Now.
	Control *control.Control
	// Measured returns what this instance measured of a deployment, for
	// GET /api/v1/deployments/{name}/triage.
	Measured func(name string) (triage.Measured, bool)
	// Databases are the gateway's named databases, listed at GET
	// /api/v1/databases; nil lists none.
	Databases *databases.Registry
}

// Server is the admin API. It is an http.Handler; mount it on a listener of
// its own (the default address is 127.0.0.1:9180).
type Server struct {
	store          *configstore.Store
	instance       string
	live           func(string) (uint64, bool)
	storeHealthOpt func() (bool, error) // Options.StoreHealth, may be nil
	storeHealth    func(context.Context) error
	tokens         *tokenSet // nil: loopback only
	hosts          hostAllowlist
	cop            *http.CrossOriginProtection
	mux            *http.ServeMux
	metrics        *metrics
	svcMetrics     *serviceMetrics
	hub            *serviceHub
	log            *zap.Logger
	audit          func(Record)
	now            func() time.Time
	guard          func(name string) (guard.View, bool)
	control        *control.Control
	pages          map[string]http.Handler // Mount's prefixes
	measured       func(name string) (triage.Measured, bool)
	databases      *databases.Registry
}

// New builds a Server. It reads the tokens file once; a file that does not
// parse is an error naming file:line. Without a tokens file the server only
// answers loopback clients and logs a warning saying so.
func New(opts Options) (*Server, error) {
	if opts.Store == nil {
		return nil, errors.New("admin: Options.Store is required")
	}
	s := &Server{
		store:          opts.Store,
		instance:       opts.Instance,
		live:           opts.Live,
		log:            opts.Logger,
		audit:          opts.Audit,
		storeHealthOpt: opts.StoreHealth,
		now:            opts.Now,
		guard:          opts.Guard,
		measured:       opts.Measured,
		databases:      opts.Databases,
		mux:            http.NewServeMux(),
		cop:            http.NewCrossOriginProtection(),
		hub:            newServiceHub(opts.Store),
	}
	if s.log == nil {
		s.log = zap.NewNop()
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.audit == nil {
		s.audit = logAudit(s.log)
	}
	s.control = opts.Control
	if s.control == nil {
		c, err := control.New(control.Options{Store: s.store, Instance: s.instance, Now: s.now, Logger: s.log})
		if err != nil {
			return nil, fmt.Errorf("admin: %w", err)
		}
		s.control = c
	}
	if opts.StoreHealth != nil {
		s.storeHealth = func(context.Context) error {
			ok, err := opts.StoreHealth()
			if ok {
				return nil
			}
			if err == nil {
				err = errors.New("store unhealthy")
			}
			return err
		}
	} else {
		s.storeHealth = func(ctx context.Context) error {
			_, err := s.store.List(ctx)
			return err
		}
	}
	if opts.Tokens != "" {
		ts, err := loadTokens(opts.Tokens)
		if err != nil {
			return nil, fmt.Errorf("admin: %w", err)
		}
		s.tokens = ts
	} else {
		s.log.Warn("admin API has no tokens file: serving loopback clients only, without authentication; " +
			"anything that can connect from this host (including a local proxy) can change routing")
	}
	hosts, err := newHostAllowlist(opts.AllowedHosts)
	if err != nil {
		return nil, fmt.Errorf("admin: %w", err)
	}
	s.hosts = hosts
	reg := opts.Registry
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	if s.metrics, err = newMetrics(reg); err != nil {
		return nil, fmt.Errorf("admin: %w", err)
	}
	if s.svcMetrics, err = newServiceMetrics(reg); err != nil {
		return nil, fmt.Errorf("admin: %w", err)
	}
	s.routes(reg)
	return s, nil
}

// Handle mounts h at pattern (a ServeMux pattern such as
// "GET /api/v1/events") behind the same Host, cross-origin, authentication
// and Content-Type checks as the built-in routes. role is what the caller
// must hold for every method the pattern matches. Like ServeMux.Handle, it
// panics on a pattern that conflicts with a registered one.
func (s *Server) Handle(pattern string, h http.Handler, role Role) {
	if !role.valid() {
		panic(fmt.Sprintf("admin: Handle %q: unknown role %q", pattern, role))
	}
	s.mux.Handle(pattern, &route{role: role, label: routeLabel(pattern), h: h})
}

// Mount serves h for every path under prefix (such as "/ui/", with the
// bare "/ui" redirected to it) behind the Host and cross-origin checks but
// not the API's authentication: h signs its callers in itself (see
// Server.SignIn) and must make its changes through the API. Call it before
// serving.
func (s *Server) Mount(prefix string, h http.Handler) {
	if !strings.HasPrefix(prefix, "/") || !strings.HasSuffix(prefix, "/") || len(prefix) < 3 {
		panic(fmt.Sprintf("admin: Mount %q: want a path like /ui/", prefix))
	}
	if s.pages == nil {
		s.pages = map[string]http.Handler{}
	}
	s.pages[prefix] = h
}

// mounted finds the handler Mount gave for r's path, if any.
func (s *Server) mounted(r *http.Request) http.Handler {
	for prefix, h := range s.pages {
		if strings.HasPrefix(r.URL.Path, prefix) {
			return h
		}
		if r.URL.Path == strings.TrimSuffix(prefix, "/") {
			return http.RedirectHandler(prefix, http.StatusMovedPermanently)
		}
	}
	return nil
}

// route is what the mux holds: the handler plus what the gate needs to know
// before running it.
type route struct {
	role  Role
	label string // the pattern without its method, for metrics
	h     http.Handler
}

func (rt *route) ServeHTTP(w http.ResponseWriter, r *http.Request) { rt.h.ServeHTTP(w, r) }

func routeLabel(pattern string) string {
	if i := strings.IndexByte(pattern, ' '); i >= 0 {
		return strings.TrimSpace(pattern[i+1:])
	}
	return pattern
}

// ServeHTTP runs the gate, then the route.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h, _ := s.mux.Handler(r)
	rt, _ := h.(*route)
	sw := &statusWriter{ResponseWriter: w}
	label := "unmatched"
	if rt != nil {
		label = rt.label
	}
	defer func() { s.metrics.observe(r.Method, label, sw.status()) }()

	if !s.hosts.allowed(r) {
		writeError(sw, &apiError{status: http.StatusMisdirectedRequest, field: "Host",
			msg: fmt.Sprintf("host %q is not allowed; use localhost or an address in the admin's allowed hosts", r.Host)})
		return
	}
	if err := s.cop.Check(r); err != nil {
		writeError(sw, &apiError{status: http.StatusForbidden, field: "Origin", msg: "cross-origin request refused: " + err.Error()})
		return
	}
	if page := s.mounted(r); page != nil {
		label = "pages"
		page.ServeHTTP(sw, r)
		return
	}
	p, aerr := s.authenticate(r)
	if aerr != nil {
		if aerr.status == http.StatusUnauthorized {
			sw.Header().Set("WWW-Authenticate", `Bearer realm="switchback"`)
		}
		writeError(sw, aerr)
		return
	}
	need := RoleViewer
	if rt != nil {
		need = rt.role
	}
	if !p.Role.allows(need) {
		aerr := &apiError{status: http.StatusForbidden,
			msg: fmt.Sprintf("%s (role %s) may not %s %s; needs role %s", p.Name, p.Role, r.Method, r.URL.Path, need)}
		s.auditRefused(r, p, aerr)
		writeError(sw, aerr)
		return
	}
	if p.Services != nil && !scopedPath(r.URL.Path) {
		aerr := scopeError(p, r.URL.Path)
		s.auditRefused(r, p, aerr)
		writeError(sw, aerr)
		return
	}
	if rt == nil {
		// Not found, wrong method or a redirect: let the mux decide the status
		// (and the Allow header), but answer in JSON.
		s.mux.ServeHTTP(&jsonErrorWriter{ResponseWriter: sw}, r)
		return
	}
	if isMutation(r.Method) {
		if aerr := checkJSONBody(r); aerr != nil {
			s.auditRefused(r, p, aerr)
			writeError(sw, aerr)
			return
		}
		r.Body = http.MaxBytesReader(sw, r.Body, maxBody)
	}
	s.mux.ServeHTTP(sw, r.WithContext(context.WithValue(r.Context(), principalKey{}, p)))
}

// auditRefused records a mutation attempt that an authenticated caller made
// and the gate refused (a viewer trying to change routing, a non-JSON body),
// so the audit log holds every attempt, not only the ones that got through.
func (s *Server) auditRefused(r *http.Request, p Principal, aerr *apiError) {
	if !isMutation(r.Method) {
		return
	}
	s.audit(Record{
		Time:   s.now(),
		Who:    p.Name,
		Role:   p.Role,
		Remote: r.RemoteAddr,
		Action: r.Method + " " + r.URL.Path,
		Status: aerr.status,
		Error:  aerr.msg,
	})
}

// maxBody caps a request body.
const maxBody = 1 << 20

func isMutation(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return false
	}
	return true
}

// statusWriter remembers the status for the requests counter.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) status() int {
	if w.code == 0 {
		return http.StatusOK
	}
	return w.code
}

// Unwrap lets http.ResponseController reach Flush and deadlines, which
// streaming routes mounted with Handle need.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// jsonErrorWriter replaces the plain-text body of the mux's own 404 and 405
// answers with a JSON error, keeping their status and headers.
type jsonErrorWriter struct {
	http.ResponseWriter
	code int
}

func (w *jsonErrorWriter) WriteHeader(code int) {
	w.code = code
	if code >= 400 {
		h := w.Header()
		h.Del("Content-Length")
		h.Set("Content-Type", "application/json")
		w.ResponseWriter.WriteHeader(code)
		fmt.Fprintf(w.ResponseWriter, "{\"error\":%q}\n", strings.ToLower(http.StatusText(code)))
		return
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *jsonErrorWriter) Write(b []byte) (int, error) {
	if w.code >= 400 {
		return len(b), nil
	}
	return w.ResponseWriter.Write(b)
}

var _ http.Handler = (*Server)(nil)
