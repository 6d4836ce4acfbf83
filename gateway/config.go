// Package gateway holds the routing core of Switchback: a deployment's
// configuration document, its compilation into an immutable Snapshot, and the
// per-request decision of which pool serves a subject and which flags are on.
//
// It imports neither Caddy nor etcd, nor any other package of this module
// (internal/boundaries pins this). Configuration flows one way:
// Config (Caddyfile, JSON, etcd) → Validate → Compile → *Snapshot → swapped
// into a Deployment with an atomic pointer → read by the request path, which
// takes no lock and allocates nothing.
package gateway

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Buckets is the number of buckets a subject hashes into: 10,000 gives a
// granularity of 0.01%, the smallest step of a weight or a flag percentage.
const Buckets = 10000

// MaxFlags is the number of flags one deployment may hold; a request's flags
// are a bit set in one uint64.
const MaxFlags = 64

// Config is one deployment's routing document. It is what the Caddyfile
// bootstraps, what the admin API edits and what etcd stores, version by
// version. Map keys make the JSON form order-free: pools and flags are always
// handled in name order, so two equal documents compile to equal snapshots.
type Config struct {
	// Name of the deployment; it seeds the pool bucketing.
	Name string `json:"name"`
	// Version of this document; 0 until a store or the Caddyfile assigns one.
	Version uint64 `json:"version"`
	// Pools by name; at least two.
	Pools map[string]Pool `json:"pools"`
	// Weights by pool name, in percent with up to two decimals, summing to
	// 100. A pool missing here has weight 0.
	Weights map[string]float64 `json:"weights"`
	// Flags by name.
	Flags map[string]Flag `json:"flags,omitempty"`
	// Guard is the automatic-fallback policy; nil turns fallback off.
	Guard *Guard `json:"guard,omitempty"`
	// Retain is how long a pool taken off traffic stays the rollback
	// target, health-checked; default 24h.
	Retain Duration `json:"retain,omitempty"`
	// Health configures active health checks of every pool's upstreams.
	Health *Health `json:"health,omitempty"`
	// Environment is what the deployment serves: one of Environments;
	// empty is production. Drills refuse a deployment not marked staging
	// unless told it is production.
	Environment string `json:"environment,omitempty"`
}

// Environments are the values Config.Environment accepts.
var Environments = []string{"production", "staging", "development", "test"}

// MaxReason is the most characters of the reason recorded with a version:
// what the store accepts, and what the packages composing reasons (rollout)
// fit theirs into.
const MaxReason = 500

// Pool is a set of interchangeable upstreams running one release.
type Pool struct {
	// Upstreams are dial addresses (host:port), in the order reverse_proxy's
	// load balancer sees them.
	Upstreams []string `json:"upstreams"`
	// Release is a free-form label (a version, a commit) shown to operators.
	Release string `json:"release,omitempty"`
}

// Flag is a feature flag rolled out to a percentage of subjects.
type Flag struct {
	// Percent of subjects with the flag on, 0..100 with up to two decimals.
	Percent float64 `json:"percent"`
}

// FieldError is a rejected value: which field, what was given, and what
// would have been accepted. Every validation error in this package is one,
// so the admin API can answer {"error": ..., "field": ...}.
type FieldError struct {
	Field string
	Value string
	Want  string
}

// PrefixField puts prefix in front of the field of err when it is a
// *FieldError, so that an error about "db.pool.max" found inside the
// second change reads "changes[1].db.pool.max"; other errors pass as they
// are.
func PrefixField(err error, prefix string) error {
	var fe *FieldError
	if errors.As(err, &fe) {
		c := *fe
		c.Field = prefix + "." + fe.Field
		return &c
	}
	return err
}

func (e *FieldError) Error() string {
	if e.Value == "" {
		return fmt.Sprintf("%s: %s", e.Field, e.Want)
	}
	return fmt.Sprintf("%s: %s: %s", e.Field, e.Value, e.Want)
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

// NameRule says what may name a deployment, a pool, a flag or a principal,
// for messages that refuse a name.
const NameRule = "want 1 to 64 of A-Z a-z 0-9 _ . - starting with a letter or digit"

// ValidName reports whether s may name a deployment, pool or flag.
func ValidName(s string) bool { return nameRE.MatchString(s) }

// CheckName refuses a name that breaks the name rule, as a *FieldError for
// field.
func CheckName(field, name string) error {
	if ValidName(name) {
		return nil
	}
	return &FieldError{Field: field, Value: strconv.Quote(name), Want: NameRule}
}

// Validate checks the document and returns the first problem as a
// *FieldError, fields in a stable order so the same document always gets the
// same answer.
func (c Config) Validate() error {
	if err := CheckName("name", c.Name); err != nil {
		return err
	}
	if len(c.Pools) < 2 {
		return &FieldError{Field: "pools", Value: strconv.Itoa(len(c.Pools)) + " pools",
			Want: "a deployment needs at least two pools (for example blue and green)"}
	}
	for _, name := range slices.Sorted(maps.Keys(c.Pools)) {
		if err := CheckName("pools", name); err != nil {
			return err
		}
		p := c.Pools[name]
		if len(p.Upstreams) == 0 {
			return &FieldError{Field: "pools." + name + ".upstreams", Value: "[]",
				Want: "a pool needs at least one upstream (host:port)"}
		}
		seen := make(map[string]bool, len(p.Upstreams))
		for _, u := range p.Upstreams {
			if err := ValidUpstream(u); err != nil {
				return &FieldError{Field: "pools." + name + ".upstreams", Value: strconv.Quote(u), Want: err.Error()}
			}
			if seen[u] {
				return &FieldError{Field: "pools." + name + ".upstreams", Value: strconv.Quote(u), Want: "listed twice; list each upstream once"}
			}
			seen[u] = true
		}
	}
	var sum int
	for _, name := range slices.Sorted(maps.Keys(c.Weights)) {
		if _, ok := c.Pools[name]; !ok {
			return &FieldError{Field: "weights." + name, Value: strconv.Quote(name),
				Want: "unknown pool; known pools: " + strings.Join(slices.Sorted(maps.Keys(c.Pools)), ", ")}
		}
		bp, err := BasisPoints(c.Weights[name])
		if err != nil {
			return &FieldError{Field: "weights." + name, Value: FormatPercent(c.Weights[name]), Want: err.Error()}
		}
		sum += bp
	}
	if sum != Buckets {
		return &FieldError{Field: "weights", Value: DescribeWeights(c.Weights),
			Want: "weights must sum to 100 (they sum to " + FormatBasisPoints(sum) + ")"}
	}
	if len(c.Flags) > MaxFlags {
		return &FieldError{Field: "flags", Value: strconv.Itoa(len(c.Flags)) + " flags",
			Want: "at most " + strconv.Itoa(MaxFlags) + " flags per deployment"}
	}
	if c.Guard != nil {
		if err := c.Guard.validate("guard"); err != nil {
			return err
		}
	}
	if c.Environment != "" && !slices.Contains(Environments, c.Environment) {
		return &FieldError{Field: "environment", Value: strconv.Quote(c.Environment), Want: "want one of " + strings.Join(Environments, ", ") + " (empty is production)"}
	}
	if c.Retain < 0 {
		return &FieldError{Field: "retain", Value: time.Duration(c.Retain).String(), Want: "want a positive duration such as 24h"}
	}
	if h := c.Health; h != nil {
		if !strings.HasPrefix(h.URI, "/") {
			return &FieldError{Field: "health.uri", Value: strconv.Quote(h.URI), Want: "want a path starting with /, like /health"}
		}
		if iv := time.Duration(h.Interval); iv != 0 && (iv < 100*time.Millisecond || iv > time.Hour) {
			return &FieldError{Field: "health.interval", Value: iv.String(), Want: "want 100ms to 1h"}
		}
		if l := time.Duration(h.Latency); l != 0 && (l < time.Millisecond || l > time.Minute) {
			return &FieldError{Field: "health.latency", Value: l.String(), Want: "want 1ms to 1m, or leave it out for no bound"}
		}
	}
	for _, name := range slices.Sorted(maps.Keys(c.Flags)) {
		if err := CheckName("flags", name); err != nil {
			return err
		}
		if _, err := BasisPoints(c.Flags[name].Percent); err != nil {
			return &FieldError{Field: "flags." + name + ".percent", Value: FormatPercent(c.Flags[name].Percent), Want: err.Error()}
		}
	}
	return nil
}

// ValidUpstream checks one dial address: host:port, optionally written with
// an http:// prefix, which is accepted and means the same. Placeholders are
// refused: reverse_proxy expands {http.request.header.X} per request, which
// would let a client choose the host the gateway connects to.
func ValidUpstream(u string) error {
	if strings.ContainsAny(u, "{}") {
		return fmt.Errorf("placeholders {...} are not accepted in upstreams (a request could choose the host); want host:port or http://host:port, for example 127.0.0.1:9001")
	}
	hostport := strings.TrimPrefix(u, "http://")
	if strings.Contains(hostport, "://") {
		return fmt.Errorf("want host:port or http://host:port (for TLS upstreams use 'transport http { tls }' in the proxy block)")
	}
	i := strings.LastIndexByte(hostport, ':')
	if i <= 0 || i == len(hostport)-1 {
		return fmt.Errorf("want host:port, for example 127.0.0.1:9001")
	}
	port, err := strconv.Atoi(hostport[i+1:])
	if err != nil || port < 1 || port > 65535 {
		return fmt.Errorf("port must be a number from 1 to 65535")
	}
	if strings.ContainsAny(hostport[:i], " /?#") {
		return fmt.Errorf("want host:port, for example 127.0.0.1:9001")
	}
	return nil
}

// CheckWeightsCover refuses weights that leave out a pool. Validate reads
// a pool missing from Weights as weight 0, which documents already stored
// rely on; input that sets weights must name every pool, so a forgotten
// pool is an error at the line that forgot it rather than a silent 0.
func CheckWeightsCover(weights map[string]float64, pools map[string]Pool) error {
	var missing []string
	for _, name := range slices.Sorted(maps.Keys(pools)) {
		if _, ok := weights[name]; !ok {
			missing = append(missing, name)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	return &FieldError{Field: "weights", Value: DescribeWeights(weights),
		Want: "give every pool a weight (0 for none); missing: " + strings.Join(missing, ", ")}
}

// ParsePercent reads a percentage as written in a Caddyfile: "10", "0.5",
// "12.25" or "10%". It returns the value in percent.
func ParsePercent(s string) (float64, error) {
	t := strings.TrimSuffix(s, "%")
	v, err := strconv.ParseFloat(t, 64)
	if err != nil || strings.ContainsAny(t, "eE") || t == "" {
		return 0, fmt.Errorf("want a number from 0 to 100 with at most two decimals, like 10 or 0.5")
	}
	if _, err := BasisPoints(v); err != nil {
		return 0, err
	}
	return v, nil
}

// BasisPoints converts a percentage to hundredths of a percent, exactly,
// rejecting values out of range or with more than two decimals. Weights,
// flag percentages and rollout steps all go through it.
func BasisPoints(pct float64) (int, error) {
	if math.IsNaN(pct) || pct < 0 || pct > 100 {
		return 0, fmt.Errorf("want a number from 0 to 100")
	}
	bp := math.Round(pct * 100)
	if math.Abs(bp-pct*100) > 1e-6 {
		return 0, fmt.Errorf("at most two decimals (0.01%% steps)")
	}
	return int(bp), nil
}

// FormatPercent writes a percentage as short as it reads: 10, 0.5, 12.25.
func FormatPercent(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }

// FormatBasisPoints writes hundredths of a percent as a percentage, like
// FormatPercent.
func FormatBasisPoints(bp int) string { return FormatPercent(float64(bp) / 100) }

// DescribeWeights writes weights in pool order for messages:
// "blue=90 green=10".
func DescribeWeights(w map[string]float64) string {
	parts := make([]string, 0, len(w))
	for _, k := range slices.Sorted(maps.Keys(w)) {
		parts = append(parts, k+"="+FormatPercent(w[k]))
	}
	if len(parts) == 0 {
		return "(none)"
	}
	return strings.Join(parts, " ")
}

// Clone returns a deep copy, so a caller can edit a document it did not
// build without touching the original (snapshots keep theirs).
func (c Config) Clone() Config {
	b, err := json.Marshal(c)
	if err != nil {
		panic("gateway: config does not marshal: " + err.Error()) // only plain data: cannot happen
	}
	var out Config
	if err := json.Unmarshal(b, &out); err != nil {
		panic("gateway: config does not round-trip: " + err.Error())
	}
	return out
}

// Equal reports whether two documents are the same but for Version.
func (c Config) Equal(o Config) bool {
	c.Version, o.Version = 0, 0
	a, errA := json.Marshal(c)
	b, errB := json.Marshal(o)
	return errA == nil && errB == nil && string(a) == string(b)
}
