package guard

import (
	"fmt"
	"strings"
	"time"

	"github.com/a8e2c47e/switchback/gateway"
)

// Policy says when a pool or a flag cohort is bad. Build it with Compile,
// which holds the defaults.
type Policy struct {
	// Configured is false when the deployment has no guard: its figures are
	// still measured and shown, but nothing is judged and nothing falls back.
	Configured bool
	// ErrorRate is the ceiling on the error fraction (0.05 = 5%); 0 is off.
	ErrorRate float64
	// P95 is the ceiling on the 95th percentile latency; 0 is off.
	P95 time.Duration
	// MinRequests is the fewest samples a decision is made on.
	MinRequests uint64
	// Baseline, when > 0, also requires the population to be worse than its
	// baseline (the other pools; the flag-off cohort) by this factor, so a
	// failure shared by both sides (a downstream outage) is not blamed on
	// one. While a baseline that takes traffic has fewer than MinRequests
	// samples, no decision is made. A baseline that takes no traffic (after
	// a full flip the old pool gets none) is not compared: the absolute
	// ceilings decide alone, so a broken live pool still falls back.
	Baseline float64
	// Window is what the figures are measured over; the meters advance one
	// slot per Window/Slots.
	Window time.Duration
	// Cooldown is the least time between two fallbacks of one deployment,
	// and between two reports of a refused one.
	Cooldown time.Duration
}

// Compile turns a deployment's guard block (nil: none) into a Policy,
// filling in the defaults: the one place they are applied.
func Compile(g *gateway.Guard) Policy {
	p := Policy{MinRequests: gateway.DefaultMinRequests, Window: gateway.DefaultWindow, Cooldown: gateway.DefaultCooldown}
	if g == nil {
		return p
	}
	p.Configured = true
	p.ErrorRate = g.ErrorRate / 100
	p.P95 = time.Duration(g.P95)
	if g.MinRequests > 0 {
		p.MinRequests = uint64(g.MinRequests)
	}
	p.Baseline = g.Baseline
	p.Window = g.Window.Std(gateway.DefaultWindow)
	p.Cooldown = g.Cooldown.Std(gateway.DefaultCooldown)
	return p
}

// Verdict is the outcome of checking one population.
type Verdict struct {
	Breach bool
	// Reason states the figures, e.g. "error rate 100.0% > 5.0% and > 2×
	// baseline 0.0% (412 requests)"; empty without a breach.
	Reason string
	// Wait says why no verdict could be reached yet (too few samples in the
	// population or its baseline); empty once one could.
	Wait string
}

// Check compares a population with the ceilings and with its baseline;
// baseLive says whether the baseline takes traffic.
func (p Policy) Check(s, base Stats, baseLive bool) Verdict {
	if s.Requests == 0 || s.Requests < p.MinRequests {
		return Verdict{Wait: fmt.Sprintf("%d of %d requests", s.Requests, max(p.MinRequests, 1))}
	}
	compare := p.Baseline > 0 && baseLive
	if compare && (base.Requests == 0 || base.Requests < p.MinRequests) {
		// Wait until the comparison means something.
		return Verdict{Wait: fmt.Sprintf("baseline has %d of %d requests", base.Requests, max(p.MinRequests, 1))}
	}
	var reasons []string
	if p.ErrorRate > 0 && s.ErrorRate() > p.ErrorRate {
		r := fmt.Sprintf("error rate %.1f%% > %.1f%%", 100*s.ErrorRate(), 100*p.ErrorRate)
		switch {
		case !compare:
			reasons = append(reasons, r)
		case s.ErrorRate() > p.Baseline*base.ErrorRate():
			reasons = append(reasons, fmt.Sprintf("%s and > %g× baseline %.1f%%", r, p.Baseline, 100*base.ErrorRate()))
		}
	}
	if p.P95 > 0 && s.P95 > p.P95 {
		r := fmt.Sprintf("p95 %v > %v", s.P95.Round(time.Millisecond), p.P95)
		switch {
		case !compare:
			reasons = append(reasons, r)
		case float64(s.P95) > p.Baseline*float64(base.P95):
			reasons = append(reasons, fmt.Sprintf("%s and > %g× baseline %v", r, p.Baseline, base.P95.Round(time.Millisecond)))
		}
	}
	if len(reasons) == 0 {
		return Verdict{}
	}
	return Verdict{Breach: true, Reason: fmt.Sprintf("%s (%d requests, %d errors)", strings.Join(reasons, "; "), s.Requests, s.Errors)}
}

// Merge adds populations, for a baseline made of several pools.
func Merge(stats ...Stats) Stats {
	var m Stats
	for _, s := range stats {
		m.Requests += s.Requests
		m.Errors += s.Errors
		// Percentiles do not add; the slowest one is the conservative
		// baseline (it makes a breach harder to claim).
		m.P50, m.P95, m.P99 = max(m.P50, s.P50), max(m.P95, s.P95), max(m.P99, s.P99)
	}
	return m
}
