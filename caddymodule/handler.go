// Package caddymodule is the Caddy shell around package gateway: the
// http.handlers.switchback handler, its Caddyfile directive, and the glue
// that gives every pool a real reverse_proxy. It holds no routing logic of
// its own.
package caddymodule

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/a8e2c47e/switchback/gateway"
	"github.com/a8e2c47e/switchback/guard"
)

func init() {
	caddy.RegisterModule(new(Handler))
}

// deployments holds each deployment's live state across config reloads:
// a reload provisions new handlers that bind to the same Deployment, so a
// version applied at runtime is not lost to the reload, and the entry goes
// away when no loaded config uses it any more.
var deployments = caddy.NewUsagePool()

// deploymentEntry is one deployment's state shared by every handler and
// config that serves it: the live snapshot and the traffic meters.
type deploymentEntry struct {
	*gateway.Deployment
	meters *guard.Registry
	// probes is what the health checker probes the live pools through:
	// the transports of the proxies built for them.
	probes *atomic.Pointer[probeTransports]
}

func (deploymentEntry) Destruct() error { return nil }

// LookupDeployment returns the live deployment of that name, if a loaded
// config serves it. Stores and the admin API apply versions through it.
func LookupDeployment(name string) (*gateway.Deployment, bool) {
	e, ok := lookupEntry(name)
	return e.Deployment, ok
}

// lookupEntry returns the shared state of a live deployment.
func lookupEntry(name string) (deploymentEntry, bool) {
	var entry deploymentEntry
	var found bool
	deployments.Range(func(k, val any) bool {
		if k == name {
			entry, found = val.(deploymentEntry), true
			return false
		}
		return true
	})
	return entry, found
}

// Handler routes each request to a pool of a blue-green deployment and
// proxies it there with Caddy's reverse_proxy, setting X-Switchback-Pool,
// X-Switchback-Flags and X-Switchback-Version on the upstream request.
//
// The JSON fields bootstrap the deployment. Once it is live, versions
// applied at runtime (see LookupDeployment) replace them without a reload.
type Handler struct {
	// Deployment names the deployment; it seeds pool bucketing.
	Deployment string `json:"deployment"`
	// Pools by name, each with its upstream dial addresses.
	Pools map[string]gateway.Pool `json:"pools"`
	// Weights by pool, in percent, summing to 100.
	Weights map[string]float64 `json:"weights"`
	// Flags by name.
	Flags map[string]gateway.Flag `json:"flags,omitempty"`
	// Sticky says where the subject comes from; default: cookie sb_uid,
	// issued by the gateway.
	Sticky *Sticky `json:"sticky,omitempty"`
	// Guard is the automatic-fallback policy; requires the switchback app.
	Guard *gateway.Guard `json:"guard,omitempty"`
	// Retain is how long a pool taken off traffic stays the rollback target.
	Retain gateway.Duration `json:"retain,omitempty"`
	// Health configures active health checks of the pools' upstreams.
	Health *gateway.Health `json:"health,omitempty"`
	// Environment marks the deployment: production (empty), staging,
	// development or test.
	Environment string `json:"environment,omitempty"`
	// ProxyRaw is a reverse_proxy handler config without upstreams: the
	// transport, load balancing, health checks and header rules every pool's
	// proxy is built from.
	ProxyRaw json.RawMessage `json:"proxy,omitempty"`

	sticky     gateway.Sticky
	ctx        caddy.Context
	logger     *zap.Logger
	deployment *gateway.Deployment
	meters     *guard.Registry
	probes     *atomic.Pointer[probeTransports]
	detach     func()

	// route is what the request path reads: the live snapshot and one
	// provisioned reverse_proxy per pool, swapped together.
	route atomic.Pointer[route]

	// proxyBase is the parent of every proxy's own context. Derived once
	// from ctx, so that ending a proxy's context (caddy.NewContext's cancel
	// runs its parent's OnCancel functions) never runs the handler's.
	proxyBase caddy.Context

	// mu protects proxies, the per-upstream-set proxies built so far, and
	// healthGauge, reverse_proxy's gauge of upstream health once found.
	mu          sync.Mutex
	proxies     map[string]*poolProxy
	healthGauge *prometheus.GaugeVec
}

// Sticky is the JSON form of a subject source.
type Sticky struct {
	// Source is "cookie", "header" or "ip".
	Source string `json:"source"`
	// Name is the cookie or header name.
	Name string `json:"name,omitempty"`
}

type route struct {
	snap    *gateway.Snapshot
	proxies []*reverseproxy.Handler // indexed like snap.Pools()
	meter   *guard.Meter            // counts outcomes per pool and flag cohort
}

// CaddyModule returns the Caddy module information.
func (*Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.switchback",
		New: func() caddy.Module { return new(Handler) },
	}
}

// Provision compiles the bootstrap document, builds a reverse_proxy per pool
// and binds the handler to its deployment.
func (h *Handler) Provision(ctx caddy.Context) error {
	h.ctx = ctx
	h.logger = ctx.Logger()
	h.proxies = make(map[string]*poolProxy)
	// Never canceled here: that would run ctx's OnCancel functions. It
	// ends with ctx, when the config is unloaded.
	h.proxyBase, _ = caddy.NewContext(ctx)

	var err error
	if h.Sticky == nil {
		h.sticky, err = gateway.ParseSticky("cookie", "")
	} else {
		h.sticky, err = gateway.ParseSticky(h.Sticky.Source, h.Sticky.Name)
	}
	if err != nil {
		return fmt.Errorf("switchback %s: %w", h.Deployment, err)
	}
	if err := checkProxyTemplate(h.ProxyRaw); err != nil {
		return fmt.Errorf("switchback %s: %w", h.Deployment, err)
	}
	boot := h.bootstrapConfig()
	if err := boot.Validate(); err != nil {
		return fmt.Errorf("switchback %s: %w", h.Deployment, err)
	}
	if err := h.declare(ctx); err != nil {
		return err
	}

	val, _, err := deployments.LoadOrNew(h.Deployment, func() (caddy.Destructor, error) {
		return deploymentEntry{Deployment: gateway.NewDeployment(h.Deployment), meters: guard.NewRegistry(),
			probes: new(atomic.Pointer[probeTransports])}, nil
	})
	if err != nil {
		return err
	}
	h.deployment = val.(deploymentEntry).Deployment
	h.meters = val.(deploymentEntry).meters
	h.probes = val.(deploymentEntry).probes
	if h.detach, err = h.deployment.Attach(h); err != nil {
		return fmt.Errorf("switchback %s: %w", h.Deployment, err)
	}

	// With the switchback app configured, the store is the truth and the
	// Caddyfile only bootstraps it; this happens here, before the server
	// accepts a request, so a restart never serves a stale document.
	app, err := ctx.AppIfConfigured("switchback")
	switch {
	case err == nil:
		doc, err := app.(*App).bootstrap(boot)
		if err != nil {
			return fmt.Errorf("switchback %s: bootstrap from store: %w", h.Deployment, err)
		}
		return h.applyIfNew(doc)
	case errors.Is(err, caddy.ErrNotConfigured):
		// The guard and the health checks run in the app and record what
		// they do in the store; accepting them without it would mean a
		// safety net that silently does nothing.
		if h.Guard != nil || h.Health != nil {
			return fmt.Errorf("switchback %s: guard and health_uri need the switchback global option (add 'switchback' in the global options block; it stores every fallback as a version)", h.Deployment)
		}
		return h.applyCaddyfile(boot)
	default:
		return err
	}
}

// applyIfNew makes a version live unless the deployment already serves it
// or a newer one: a reload keeps what the watch, the guard or a rollout
// applied, even when the store is down and bootstrap fell back to an older
// last-known-good or to the Caddyfile.
func (h *Handler) applyIfNew(doc gateway.Config) error {
	if _, err := h.deployment.Apply(doc); err != nil && !errors.Is(err, gateway.ErrStale) {
		return fmt.Errorf("switchback %s: %w", h.Deployment, err)
	}
	return nil
}

// applyCaddyfile is the store-less mode: the Caddyfile's document goes live
// unless the deployment already serves an equal one (a reload of an
// unchanged Caddyfile keeps its version); a changed one is the next version.
func (h *Handler) applyCaddyfile(boot gateway.Config) error {
	cur := h.deployment.Snapshot()
	switch {
	case cur == nil:
		boot.Version = 1
	case cur.Config().Equal(boot):
		return nil
	default:
		boot.Version = cur.Version() + 1
	}
	return h.applyIfNew(boot)
}

func (h *Handler) bootstrapConfig() gateway.Config {
	return gateway.Config{Name: h.Deployment, Pools: h.Pools, Weights: h.Weights, Flags: h.Flags,
		Guard: h.Guard, Retain: h.Retain, Health: h.Health, Environment: h.Environment}
}

// checkProxyTemplate rejects proxy settings that would fight the gateway:
// upstreams come from the pools, never from the template.
func checkProxyTemplate(raw json.RawMessage) error {
	if len(raw) == 0 {
		return nil
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil {
		return fmt.Errorf("proxy: %w", err)
	}
	for _, k := range []string{"upstreams", "dynamic_upstreams"} {
		if _, ok := fields[k]; ok {
			return fmt.Errorf("proxy.%s: upstreams are set per pool ('pool NAME HOST:PORT...'), not in the proxy block", k)
		}
	}
	return nil
}

// Prepare builds the route for snap: it reuses the proxy of every pool whose
// upstream list is unchanged and provisions one for each new list, so a flip
// or weight change never rebuilds a proxy (and never drops its WebSockets).
// Part of gateway.Binder; the deployment serialises calls.
func (h *Handler) Prepare(snap *gateway.Snapshot) (commit func(), err error) {
	pools := snap.Pools()
	names := make([]string, len(pools))
	for i, p := range pools {
		names[i] = p.Name
	}
	rt := &route{
		snap:    snap,
		proxies: make([]*reverseproxy.Handler, len(pools)),
		meter:   h.meters.Meter(names, snap.FlagNames()),
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	var created []string
	probes := make(probeTransports, len(pools))
	for i, p := range pools {
		key := upstreamKey(p.Upstreams)
		if pp, ok := h.proxies[key]; ok {
			rt.proxies[i] = pp.rp
			probes[key] = pp.probeTransport()
			continue
		}
		pp, err := h.newProxy(p.Upstreams)
		if err != nil {
			for _, k := range created {
				h.retire(k)
			}
			return nil, fmt.Errorf("pool %s: %w", p.Name, err)
		}
		h.proxies[key] = pp
		created = append(created, key)
		rt.proxies[i] = pp.rp
		probes[key] = pp.probeTransport()
	}
	return func() {
		h.route.Store(rt)
		h.probes.Store(&probes)
		h.meters.Prune(names, snap.FlagNames())
		h.retireUnused(rt)
	}, nil
}

// retireUnused retires the proxies no pool uses any more.
func (h *Handler) retireUnused(rt *route) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for key, pp := range h.proxies {
		if !slices.Contains(rt.proxies, pp.rp) {
			h.retire(key)
		}
	}
}

// retire ends the proxy of one upstream list and the health series of its
// upstreams. h.mu must be held.
func (h *Handler) retire(key string) {
	pp := h.proxies[key]
	delete(h.proxies, key)
	if err := pp.retire(); err != nil {
		h.logger.Error("retiring proxy", zap.String("upstreams", key), zap.Error(err))
	}
	h.forgetHealth(pp.dials())
}

func upstreamKey(upstreams []string) string { return strings.Join(upstreams, " ") }

// Cleanup unbinds the handler and releases its proxies. It is safe after a
// partial Provision.
func (h *Handler) Cleanup() error {
	h.undeclare()
	if h.detach != nil {
		h.detach()
	}
	if h.deployment != nil {
		_, _ = deployments.Delete(h.Deployment)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for key := range h.proxies {
		h.retire(key)
	}
	return nil
}

// ServeHTTP decides the pool and flags for the request, writes them to the
// upstream headers, and hands the request to that pool's reverse_proxy. The
// route is read once, so a request finishes on the pool it started on even
// if a new version goes live meanwhile.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	rt := h.route.Load()
	d := h.decide(rt.snap, w, r)
	gateway.StripClientHeaders(r.Header)
	gateway.StripClientTrailers(r)
	rt.snap.SetUpstreamHeaders(r.Header, d)
	start := time.Now()
	err := rt.proxies[d.Pool].ServeHTTP(w, r, next)
	// A request its client abandoned says nothing about the upstream: its
	// cut-short latency (or error) would skew the guard's figures.
	if r.Context().Err() == nil {
		status, latency := proxied(r)
		if status != http.StatusSwitchingProtocols { // a WebSocket's lifetime is no latency
			if latency == 0 {
				latency = time.Since(start) // a transport failure: time to fail
			}
			rt.meter.Record(d.Pool, d.Flags, err != nil || rt.snap.IsError(status), latency)
		}
	}
	return err
}

// proxied reads what reverse_proxy recorded of the upstream's answer: its
// status and how long the response headers took (time to first byte, so a
// long streamed body is not counted as slowness); zeros when there was no
// answer (a transport failure returns an error instead).
func proxied(r *http.Request) (status int, latency time.Duration) {
	repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	if !ok {
		return 0, 0
	}
	v, _ := repl.Get("http.reverse_proxy.status_code")
	status, _ = v.(int)
	v, _ = repl.Get("http.reverse_proxy.upstream.latency")
	latency, _ = v.(time.Duration)
	return status, latency
}

func (h *Handler) decide(snap *gateway.Snapshot, w http.ResponseWriter, r *http.Request) gateway.Decision {
	var clientIP string
	if h.sticky.Kind == gateway.StickyIP {
		clientIP, _ = caddyhttp.GetVar(r.Context(), caddyhttp.ClientIPVarKey).(string)
	}
	if subject, ok := h.sticky.Subject(r, clientIP); ok {
		return snap.Decide(subject)
	}
	if h.sticky.Kind == gateway.StickyCookie {
		// First visit: issue the subject now, so this very request is
		// bucketed as every later one will be.
		return snap.Decide(h.sticky.IssueSubject(w.Header(), r.TLS != nil))
	}
	return snap.DecideRandom()
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.CleanerUpper          = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
	_ gateway.Binder              = (*Handler)(nil)
)
