package caddymodule

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"
	"github.com/prometheus/client_golang/prometheus"
)

// poolProxy is the reverse_proxy of one upstream list, with the context
// that lives exactly as long as it: reverse_proxy ties its active health
// checker and its metrics updater to the context it is provisioned with, so
// a proxy provisioned with the handler's context would keep probing and
// reporting upstreams no pool has any more until the next config reload.
type poolProxy struct {
	rp *reverseproxy.Handler
	// end cancels the proxy's context: its goroutines stop, and it and
	// the modules it loaded (its transport) are cleaned up.
	end func()
	// ownTransport is set when reverse_proxy built its default transport
	// itself: no context cleans that one up, so retire closes its idle
	// connections.
	ownTransport bool
}

// newProxy provisions a reverse_proxy for one upstream list from the proxy
// template, as a module of a context of its own: the context's cancel
// cleans up exactly the proxy and what it loaded, and its logs and events
// name it as reverse_proxy.
func (h *Handler) newProxy(upstreams []string) (*poolProxy, error) {
	tmpl := new(reverseproxy.Handler)
	if len(h.ProxyRaw) > 0 {
		if err := json.Unmarshal(h.ProxyRaw, tmpl); err != nil {
			return nil, fmt.Errorf("proxy: %w", err)
		}
	}
	for _, u := range upstreams {
		tmpl.Upstreams = append(tmpl.Upstreams, &reverseproxy.Upstream{Dial: strings.TrimPrefix(u, "http://")})
	}
	raw, err := json.Marshal(tmpl)
	if err != nil {
		return nil, fmt.Errorf("proxy: %w", err)
	}
	// caddy.NewContext gives the child a metrics registry of its own, which
	// no one scrapes: reverse_proxy registers its upstream health gauge
	// there, and exposeHealthGauge registers that same gauge once in the
	// config's registry.
	ctx, end := caddy.NewContext(h.proxyBase)
	mod, err := ctx.LoadModuleByID("http.handlers.reverse_proxy", raw)
	if err != nil {
		end() // a partial Provision may have started the health checker
		return nil, fmt.Errorf("provision reverse_proxy: %w", err)
	}
	p := &poolProxy{rp: mod.(*reverseproxy.Handler), end: end, ownTransport: tmpl.TransportRaw == nil}
	if err := h.exposeHealthGauge(ctx.GetMetricsRegistry()); err != nil {
		_ = p.retire()
		return nil, err
	}
	return p, nil
}

// retire ends the proxy's context. Requests already in the proxy finish;
// only its hijacked (WebSocket) connections are closed, as they would be
// by reverse_proxy when its upstream goes away.
func (p *poolProxy) retire() error {
	p.end()
	if cu, ok := p.rp.Transport.(caddy.CleanerUpper); ok && p.ownTransport {
		return cu.Cleanup()
	}
	return nil
}

// dials returns the dial addresses the proxy sends to.
func (p *poolProxy) dials() []string {
	out := make([]string, len(p.rp.Upstreams))
	for i, u := range p.rp.Upstreams {
		out[i] = u.Dial
	}
	return out
}

// probeTransport returns what the health checker should send its probes
// through: the proxy's own transport, so a probe reaches an upstream as a
// proxied request does (TLS, client certificates, resolvers included).
func (p *poolProxy) probeTransport() http.RoundTripper {
	return probeTransport{p.rp.Transport}
}

// probeTransports maps an upstream list (see upstreamKey) to the transport
// of the proxy built for it.
type probeTransports map[string]http.RoundTripper

// probeTransport picks each probe's scheme the way reverse_proxy's own
// active health checks do: a transport with TLS turns http into https.
type probeTransport struct{ rt http.RoundTripper }

func (t probeTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if o, ok := t.rt.(reverseproxy.HealthCheckSchemeOverriderTransport); ok {
		u := *req.URL
		o.OverrideHealthCheckScheme(&u, u.Port())
		if u.Scheme != req.URL.Scheme {
			req = req.Clone(req.Context())
			req.URL = &u
		}
	}
	return t.rt.RoundTrip(req)
}

// upstreamsHealthyOpts are reverse_proxy's options for its upstream health
// gauge; a gauge vector with the same description is how its one global
// instance is found (see exposeHealthGauge).
var upstreamsHealthyOpts = prometheus.GaugeOpts{
	Namespace: "caddy",
	Subsystem: "reverse_proxy",
	Name:      "upstreams_healthy",
	Help:      "Health status of reverse proxy upstreams.",
}

// exposeHealthGauge finds reverse_proxy's upstream health gauge in the
// registry a proxy was provisioned with, registers it in the config's
// registry (once: a second registration is refused as already there), and
// keeps it, so retire can delete the series of upstreams no proxy has any
// more.
func (h *Handler) exposeHealthGauge(reg *prometheus.Registry) error {
	if h.healthGauge != nil {
		return nil
	}
	var are prometheus.AlreadyRegisteredError
	probe := prometheus.NewGaugeVec(upstreamsHealthyOpts, []string{"upstream"})
	if err := reg.Register(probe); !errors.As(err, &are) {
		// reverse_proxy changed how it registers the gauge: its series
		// stay out of the config's metrics, which is not worth failing
		// a proxy for.
		reg.Unregister(probe)
		h.logger.Debug("reverse_proxy's upstream health gauge not found in its registry")
		return nil
	}
	g, ok := are.ExistingCollector.(*prometheus.GaugeVec)
	if !ok {
		return nil
	}
	if err := h.ctx.GetMetricsRegistry().Register(g); err != nil && !errors.As(err, &are) {
		return fmt.Errorf("metrics: %w", err)
	}
	h.healthGauge = g
	return nil
}

// forgetHealth deletes the health series of upstreams the handler's proxies
// no longer send to. Another handler's proxy of the same upstream sets its
// series again on its next update.
func (h *Handler) forgetHealth(gone []string) {
	if h.healthGauge == nil {
		return
	}
	live := map[string]bool{}
	for _, p := range h.proxies {
		for _, d := range p.dials() {
			live[d] = true
		}
	}
	for _, d := range gone {
		if !live[d] {
			h.healthGauge.DeleteLabelValues(d)
		}
	}
}
