package gateway

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Guard is a deployment's automatic-fallback policy, part of the versioned
// document so every instance judges by the same rules.
type Guard struct {
	// ErrorRate is the ceiling, in percent, on the error share of a pool or
	// a flag cohort over the window; 0 turns the check off.
	ErrorRate float64 `json:"error_rate,omitempty"`
	// P95 is the ceiling on the 95th percentile latency; 0 is off.
	P95 Duration `json:"p95,omitempty"`
	// Window the figures are measured over; default 10s.
	Window Duration `json:"window,omitempty"`
	// MinRequests is the fewest samples a decision is made on; default 20.
	MinRequests int `json:"min_requests,omitempty"`
	// Baseline, when > 0, also requires being worse than the other pools
	// (or the flag-off cohort) by this factor.
	Baseline float64 `json:"baseline,omitempty"`
	// Errors lists the statuses that count as errors besides transport
	// failures: "5xx", "4xx", or single codes like "429"; default ["5xx"].
	Errors []string `json:"errors,omitempty"`
	// Cooldown is the least time between two fallbacks of one deployment;
	// default 30s.
	Cooldown Duration `json:"cooldown,omitempty"`
	// Criteria are external rollback criteria (databases, Prometheus
	// queries, health endpoints), judged by the elected instance.
	Criteria []Criterion `json:"criteria,omitempty"`
}

// Health configures active health checks of the pools, which keep the
// rollback target verified while it takes no traffic.
type Health struct {
	// URI requested on every upstream, e.g. /health.
	URI string `json:"uri"`
	// Interval between checks; default 2s.
	Interval Duration `json:"interval,omitempty"`
	// Latency, when set, bounds how long an upstream may take to answer a
	// check: a slower answer fails it, so a pool that answers every request
	// but slowly is not called healthy.
	Latency Duration `json:"latency,omitempty"`
}

// Defaults applied where a document leaves a value unset.
const (
	DefaultWindow      = 10 * time.Second
	DefaultMinRequests = 20
	DefaultCooldown    = 30 * time.Second
	DefaultRetain      = 24 * time.Hour
	DefaultInterval    = 2 * time.Second
)

// Duration is a time.Duration that reads and writes as "10s" in JSON, so
// stored documents and their diffs stay readable. It also reads a number of
// nanoseconds, as Caddy's JSON does.
type Duration time.Duration

// MarshalJSON writes the duration as a string like "1m30s".
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads "1m30s" or a number of nanoseconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		v, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("duration %q: want a Go duration like 500ms, 10s or 24h", s)
		}
		*d = Duration(v)
		return nil
	}
	var n int64
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("duration %s: want a string like \"10s\" or a number of nanoseconds", b)
	}
	*d = Duration(n)
	return nil
}

// Std returns the time.Duration, or def when d is unset.
func (d Duration) Std(def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return time.Duration(d)
}

// validate checks the policy, naming fields under prefix.
func (g *Guard) validate(prefix string) error {
	if g.ErrorRate < 0 || g.ErrorRate > 100 {
		return &FieldError{Field: prefix + ".error_rate", Value: FormatPercent(g.ErrorRate), Want: "want a percentage from 0 to 100 (0 turns it off)"}
	}
	if g.P95 < 0 {
		return &FieldError{Field: prefix + ".p95", Value: time.Duration(g.P95).String(), Want: "want a positive duration such as 500ms (0 turns it off)"}
	}
	if g.ErrorRate == 0 && g.P95 == 0 && len(g.Criteria) == 0 {
		return &FieldError{Field: prefix, Value: "", Want: "a guard needs error_rate, p95 or a criterion"}
	}
	if w := g.Window; w != 0 && (time.Duration(w) < time.Second || time.Duration(w) > 10*time.Minute) {
		return &FieldError{Field: prefix + ".window", Value: time.Duration(w).String(), Want: "want 1s to 10m"}
	}
	if g.MinRequests < 0 {
		return &FieldError{Field: prefix + ".min_requests", Value: strconv.Itoa(g.MinRequests), Want: "want 0 or more"}
	}
	if g.Baseline != 0 && g.Baseline < 1 {
		return &FieldError{Field: prefix + ".baseline", Value: strconv.FormatFloat(g.Baseline, 'g', -1, 64), Want: "want a factor of at least 1, like 2 (0 turns it off)"}
	}
	for _, e := range g.Errors {
		if _, _, err := ParseErrorClass(e); err != nil {
			return &FieldError{Field: prefix + ".errors", Value: strconv.Quote(e), Want: err.Error()}
		}
	}
	if g.Cooldown < 0 {
		return &FieldError{Field: prefix + ".cooldown", Value: time.Duration(g.Cooldown).String(), Want: "want a positive duration"}
	}
	return validateCriteria(prefix, g.Criteria)
}

// ParseErrorClass reads "5xx", "4xx" or a status code like "429" as the
// inclusive range of statuses it names.
func ParseErrorClass(s string) (lo, hi int, err error) {
	if len(s) == 3 && strings.HasSuffix(s, "xx") && s[0] >= '1' && s[0] <= '5' {
		lo = int(s[0]-'0') * 100
		return lo, lo + 99, nil
	}
	code, err := strconv.Atoi(s)
	if err != nil || code < 100 || code > 599 {
		return 0, 0, fmt.Errorf("want a status class like 5xx or a code from 100 to 599")
	}
	return code, code, nil
}

// ErrorStatuses compiles a guard's error classes into a lookup table of
// statuses 0..599 (true = counts as an error), for the request path.
func (g *Guard) ErrorStatuses() *[600]bool {
	var t [600]bool
	classes := g.Errors
	if len(classes) == 0 {
		classes = []string{"5xx"}
	}
	for _, c := range classes {
		lo, hi, err := ParseErrorClass(c)
		if err != nil {
			continue // validated before compile
		}
		for s := lo; s <= hi; s++ {
			t[s] = true
		}
	}
	return &t
}
