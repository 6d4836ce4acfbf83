package caddymodule

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"

	"github.com/a8e2c47e/switchback/gateway"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("switchback", parseCaddyfile)
	// The directive orders itself, so users never write 'order'.
	httpcaddyfile.RegisterDirectiveOrder("switchback", httpcaddyfile.Before, "reverse_proxy")
}

func parseCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	sb := new(Handler)
	if err := sb.unmarshalCaddyfile(h); err != nil {
		return nil, err
	}
	return sb, nil
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens. Syntax:
//
//	switchback <deployment> {
//		pool <name> <upstream...> {   # two or more pools; the block is optional
//			release <label>           # shown to operators, e.g. v1.2.3
//		}
//		live <pool>                   # all traffic to one pool, or:
//		weights <pool> <percent> ...  # every pool, summing to 100: weights blue 90 green 10
//		sticky cookie [<name>]        # default: cookie sb_uid, issued by the gateway
//		sticky header <name>          # e.g. sticky header X-User-ID
//		sticky ip                     # the client IP (trusted_proxies aware)
//		flag <name> <percent>         # 0..100, up to two decimals; repeatable
//		guard {                       # automatic fallback (needs the switchback app)
//			error_rate 5%             # ceiling on the error share over the window
//			p95 500ms                 # ceiling on p95 latency
//			window 10s                # default 10s
//			min_requests 20           # no decision on fewer samples (default 20)
//			baseline 2x               # and worse than the other pool / flag-off cohort by this factor
//			errors 5xx 429            # what counts as an error (default 5xx; transport failures always)
//			cooldown 30s              # least time between two fallbacks (default 30s)
//			criterion <name> database <db> above 90%               # external rollback criteria,
//			criterion <name> prometheus <url> "<query>" above 5000 # repeatable; each takes
//			criterion <name> http <url> status 200 within 500ms    # for, window, interval
//		}
//		retain 24h                    # how long the old pool stays the rollback target
//		environment staging           # production (default), staging, development or test
//		health_uri /health            # active health checks of every pool's upstreams
//		health_interval 2s
//		health_latency 500ms          # optional: a check answered slower fails
//		proxy {                       # any reverse_proxy subdirective except upstreams:
//			lb_policy round_robin     # transport, lb_*, health_*, header_up, ...
//		}
//	}
//
// Upstreams are host:port (or http://host:port); placeholders such as
// {http.request.header.X} are refused, since a request could then choose
// the host. A percent may carry a trailing %. Without 'live' or 'weights',
// the pool declared first is live. Every setting but pool and flag is
// given at most once (criterion may repeat), and durations are positive: a setting left out
// takes its default. A deployment is declared by one switchback directive
// per Caddyfile; to serve it on several addresses, list them on one site.
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	return h.unmarshal(d, nil)
}

func (h *Handler) unmarshalCaddyfile(helper httpcaddyfile.Helper) error {
	return h.unmarshal(helper.Dispenser, &helper)
}

func (h *Handler) unmarshal(d *caddyfile.Dispenser, helper *httpcaddyfile.Helper) error {
	d.Next() // directive name
	if !d.NextArg() {
		return d.Errf("switchback needs a deployment name, e.g. 'switchback checkout {'")
	}
	h.Deployment = d.Val()
	if err := gateway.CheckName("deployment", h.Deployment); err != nil {
		return d.WrapErr(err)
	}
	if helper != nil {
		if err := declareOnce(helper, h.Deployment); err != nil {
			return err
		}
	}
	if d.NextArg() {
		return d.Errf("unexpected argument %q after the deployment name; settings go in a { } block", d.Val())
	}
	h.Pools = map[string]gateway.Pool{}
	var (
		firstPool string
		live      string
		liveAt    *caddyfile.Dispenser // where 'live' was, for errors found later
		weightsAt *caddyfile.Dispenser // where 'weights' was
		weighted  bool
		given     = settings{}
	)
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		if d.Val() != "pool" && d.Val() != "flag" { // the repeatable ones
			if err := given.once(d); err != nil {
				return err
			}
		}
		switch d.Val() {
		case "pool":
			if !d.NextArg() {
				return d.Errf("pool needs a name and at least one upstream, e.g. 'pool blue 127.0.0.1:9001'")
			}
			name := d.Val()
			if err := gateway.CheckName("pool", name); err != nil {
				return d.WrapErr(err)
			}
			if _, dup := h.Pools[name]; dup {
				return d.Errf("duplicate pool %q: each pool is declared once", name)
			}
			var p gateway.Pool
			for d.NextArg() {
				if err := gateway.ValidUpstream(d.Val()); err != nil {
					return d.Errf("pool %s: upstream %q: %v", name, d.Val(), err)
				}
				p.Upstreams = append(p.Upstreams, d.Val())
			}
			poolGiven := settings{}
			for pn := d.Nesting(); d.NextBlock(pn); {
				if err := poolGiven.once(d); err != nil {
					return err
				}
				switch d.Val() {
				case "release":
					if !d.NextArg() {
						return d.ArgErr()
					}
					p.Release = d.Val()
					if d.NextArg() {
						return d.ArgErr()
					}
				default:
					return d.Errf("pool %s: unknown setting %q; accepted: release", name, d.Val())
				}
			}
			if len(p.Upstreams) == 0 {
				return d.Errf("pool %s has no upstreams: list at least one host:port after its name", name)
			}
			h.Pools[name] = p
			if firstPool == "" {
				firstPool = name
			}
		case "live":
			if weighted {
				return d.Errf("'live' and 'weights' both given: use one")
			}
			if !d.NextArg() {
				return d.Errf("live needs a pool name, e.g. 'live blue'")
			}
			live = d.Val()
			at := *d
			liveAt = &at
			if d.NextArg() {
				return d.Errf("live takes one pool, got also %q; to split traffic use 'weights blue 90 green 10'", d.Val())
			}
		case "weights":
			if live != "" {
				return d.Errf("'live' and 'weights' both given: use one")
			}
			weighted = true
			at := *d
			weightsAt = &at
			args := d.RemainingArgs()
			if len(args) == 0 || len(args)%2 != 0 {
				return d.Errf("weights takes pool/percent pairs, e.g. 'weights blue 90 green 10', got %q", strings.Join(args, " "))
			}
			h.Weights = map[string]float64{}
			for i := 0; i < len(args); i += 2 {
				if _, dup := h.Weights[args[i]]; dup {
					return d.Errf("weights: pool %q given twice", args[i])
				}
				pct, err := gateway.ParsePercent(args[i+1])
				if err != nil {
					return d.Errf("weights: %s %q: %v", args[i], args[i+1], err)
				}
				h.Weights[args[i]] = pct
			}
		case "sticky":
			args := d.RemainingArgs()
			if len(args) == 0 || len(args) > 2 {
				return d.Errf("sticky takes 'cookie [NAME]', 'header NAME' or 'ip', got %q", strings.Join(args, " "))
			}
			s := &Sticky{Source: args[0]}
			if len(args) == 2 {
				s.Name = args[1]
			}
			if _, err := gateway.ParseSticky(s.Source, s.Name); err != nil {
				return d.Errf("sticky %s: %v", strings.Join(args, " "), err)
			}
			h.Sticky = s
		case "flag":
			args := d.RemainingArgs()
			if len(args) != 2 {
				return d.Errf("flag takes a name and a percent, e.g. 'flag new_payment_flow 10', got %q", strings.Join(args, " "))
			}
			if err := gateway.CheckName("flag", args[0]); err != nil {
				return d.WrapErr(err)
			}
			pct, err := gateway.ParsePercent(args[1])
			if err != nil {
				return d.Errf("flag %s: percent %q: %v", args[0], args[1], err)
			}
			if h.Flags == nil {
				h.Flags = map[string]gateway.Flag{}
			}
			if _, dup := h.Flags[args[0]]; dup {
				return d.Errf("flag %q given twice", args[0])
			}
			h.Flags[args[0]] = gateway.Flag{Percent: pct}
		case "guard":
			g, err := parseGuard(d)
			if err != nil {
				return err
			}
			h.Guard = g
		case "environment":
			if !d.NextArg() {
				return d.Errf("environment needs a value: one of %s", strings.Join(gateway.Environments, ", "))
			}
			h.Environment = d.Val()
			if d.NextArg() {
				return d.ArgErr()
			}
			if !slices.Contains(gateway.Environments, h.Environment) {
				return d.Errf("environment %q: want one of %s", h.Environment, strings.Join(gateway.Environments, ", "))
			}
		case "retain":
			v, err := durationArg(d)
			if err != nil {
				return err
			}
			h.Retain = v
		case "health_uri":
			if !d.NextArg() {
				return d.Errf("health_uri needs a path, e.g. 'health_uri /health'")
			}
			if h.Health == nil {
				h.Health = &gateway.Health{}
			}
			h.Health.URI = d.Val()
			if !strings.HasPrefix(h.Health.URI, "/") {
				return d.Errf("health_uri %q: want a path starting with /", h.Health.URI)
			}
		case "health_interval":
			v, err := durationArg(d)
			if err != nil {
				return err
			}
			if h.Health == nil {
				h.Health = &gateway.Health{}
			}
			h.Health.Interval = v
		case "health_latency":
			v, err := durationArg(d)
			if err != nil {
				return err
			}
			if h.Health == nil {
				h.Health = &gateway.Health{}
			}
			h.Health.Latency = v
		case "proxy":
			raw, err := parseProxyBlock(d, helper)
			if err != nil {
				return err
			}
			h.ProxyRaw = raw
		default:
			return d.Errf("unknown switchback setting %q; accepted: pool, live, weights, sticky, flag, guard, retain, environment, health_uri, health_interval, health_latency, proxy", d.Val())
		}
	}

	if len(h.Pools) < 2 {
		return d.Errf("switchback %s: %d pool(s) declared; a deployment needs at least two (e.g. blue and green)", h.Deployment, len(h.Pools))
	}
	if live != "" {
		if _, ok := h.Pools[live]; !ok {
			return liveAt.Errf("live %q: unknown pool; declared pools: %s", live, poolList(h.Pools))
		}
		h.Weights = map[string]float64{}
		for name := range h.Pools {
			h.Weights[name] = 0
		}
		h.Weights[live] = 100
	}
	if h.Weights == nil {
		h.Weights = map[string]float64{}
		for name := range h.Pools {
			h.Weights[name] = 0
		}
		h.Weights[firstPool] = 100
	}
	if h.Health != nil && h.Health.URI == "" {
		return d.Errf("switchback %s: health_interval or health_latency without health_uri: add 'health_uri /health'", h.Deployment)
	}
	if err := h.bootstrapConfig().Validate(); err != nil {
		var fe *gateway.FieldError
		if errors.As(err, &fe) && strings.HasPrefix(fe.Field, "weights") && weightsAt != nil {
			return weightsAt.Errf("switchback %s: %v", h.Deployment, err)
		}
		return d.Errf("switchback %s: %v", h.Deployment, err)
	}
	if weighted {
		if err := gateway.CheckWeightsCover(h.Weights, h.Pools); err != nil {
			return weightsAt.Errf("switchback %s: %v", h.Deployment, err)
		}
	}
	return nil
}

// parseProxyBlock reads 'proxy { ... }' with reverse_proxy's own Caddyfile
// parser, so every reverse_proxy subdirective works and is documented there.
func parseProxyBlock(d *caddyfile.Dispenser, helper *httpcaddyfile.Helper) (json.RawMessage, error) {
	if d.NextArg() {
		return nil, d.Errf("proxy takes no arguments (upstreams come from the pools): %q", d.Val())
	}
	seg := d.NewFromNextSegment()
	rp := new(reverseproxy.Handler)
	if err := rp.UnmarshalCaddyfile(seg); err != nil {
		return nil, err
	}
	if len(rp.Upstreams) > 0 || rp.DynamicUpstreamsRaw != nil {
		return nil, d.Errf("proxy: upstreams are set per pool ('pool NAME HOST:PORT...'), not with 'to' or 'dynamic' in the proxy block")
	}
	if helper != nil {
		if err := rp.FinalizeUnmarshalCaddyfile(helper.WithDispenser(seg)); err != nil {
			return nil, err
		}
	}
	raw, err := json.Marshal(rp)
	if err != nil {
		return nil, d.Errf("proxy: %v", err)
	}
	return raw, nil
}

// parseGuard reads a guard { } block.
func parseGuard(d *caddyfile.Dispenser) (*gateway.Guard, error) {
	if d.NextArg() {
		return nil, d.Errf("guard takes a block, not %q", d.Val())
	}
	g := &gateway.Guard{}
	given := settings{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		if d.Val() == "criterion" {
			c, err := parseCriterion(d)
			if err != nil {
				return nil, err
			}
			g.Criteria = append(g.Criteria, c)
			continue
		}
		if err := given.once(d); err != nil {
			return nil, err
		}
		switch d.Val() {
		case "error_rate":
			if !d.NextArg() {
				return nil, d.Errf("error_rate needs a percentage, e.g. 'error_rate 5%%'")
			}
			pct, err := gateway.ParsePercent(d.Val())
			if err != nil {
				return nil, d.Errf("guard error_rate %q: %v", d.Val(), err)
			}
			g.ErrorRate = pct
		case "p95":
			v, err := durationArg(d)
			if err != nil {
				return nil, err
			}
			g.P95 = v
		case "window":
			v, err := durationArg(d)
			if err != nil {
				return nil, err
			}
			g.Window = v
		case "cooldown":
			v, err := durationArg(d)
			if err != nil {
				return nil, err
			}
			g.Cooldown = v
		case "min_requests":
			if !d.NextArg() {
				return nil, d.ArgErr()
			}
			// 0 would read as unset and become the default, 20.
			n, err := strconv.Atoi(d.Val())
			if err != nil || n < 1 {
				return nil, d.Errf("guard min_requests %q: want a whole number, 1 or more (leave it out for the default, %d)", d.Val(), gateway.DefaultMinRequests)
			}
			g.MinRequests = n
		case "baseline":
			if !d.NextArg() {
				return nil, d.ArgErr()
			}
			f, err := strconv.ParseFloat(strings.TrimSuffix(d.Val(), "x"), 64)
			if err != nil || f < 1 {
				return nil, d.Errf("guard baseline %q: want a factor of at least 1, like 2x", d.Val())
			}
			g.Baseline = f
		case "errors":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return nil, d.Errf("errors needs status classes or codes, e.g. 'errors 5xx 429'")
			}
			for _, a := range args {
				if _, _, err := gateway.ParseErrorClass(a); err != nil {
					return nil, d.Errf("guard errors %q: %v", a, err)
				}
			}
			g.Errors = args
		default:
			return nil, d.Errf("unknown guard setting %q; accepted: error_rate, p95, window, min_requests, baseline, errors, cooldown, criterion", d.Val())
		}
	}
	return g, nil
}

// durationArg reads one duration argument, like 10s or 24h. Zero is
// refused: a document reads 0 as unset, so '0s' would silently become the
// default (or, for p95, off).
func durationArg(d *caddyfile.Dispenser) (gateway.Duration, error) {
	name := d.Val()
	if !d.NextArg() {
		return 0, d.Errf("%s needs a duration, e.g. 10s", name)
	}
	v, err := caddy.ParseDuration(d.Val())
	if err != nil || v <= 0 {
		return 0, d.Errf("%s %q: want a positive duration like 500ms, 10s, 24h or 1d (leave %s out for its default)", name, d.Val(), name)
	}
	if d.NextArg() {
		return 0, d.Errf("%s takes one duration, got also %q", name, d.Val())
	}
	return gateway.Duration(v), nil
}

// settings remembers where each setting of one block was given, so a
// second one is refused instead of silently replacing the first.
type settings map[string]string

func (s settings) once(d *caddyfile.Dispenser) error {
	name := d.Val()
	if first, dup := s[name]; dup {
		return d.Errf("%s given twice (first at %s): give it once", name, first)
	}
	s[name] = fmt.Sprintf("%s:%d", d.File(), d.Line())
	return nil
}

// declaredKey keeps, in the adapter's state, where each deployment was
// declared (file:line).
const declaredKey = "switchback.deployments"

// declareOnce refuses a deployment declared by a second switchback
// directive in the same Caddyfile: both would serve one shared document,
// the first one's, so the second site's pools would be silently ignored.
// One site block with several addresses declares it once.
func declareOnce(h *httpcaddyfile.Helper, name string) error {
	seen, _ := h.State[declaredKey].(map[string]string)
	if seen == nil {
		seen = map[string]string{}
		h.State[declaredKey] = seen
	}
	if first, dup := seen[name]; dup {
		return h.Errf("deployment %q already declared at %s: each switchback directive needs its own deployment name (to serve one deployment on several addresses, list them on one site block)", name, first)
	}
	seen[name] = fmt.Sprintf("%s:%d", h.File(), h.Line())
	return nil
}

func poolList(p map[string]gateway.Pool) string {
	names := make([]string, 0, len(p))
	for n := range p {
		names = append(names, strconv.Quote(n))
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}

// Interface guard
var _ caddyfile.Unmarshaler = (*Handler)(nil)
