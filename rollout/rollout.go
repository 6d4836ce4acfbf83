// Package rollout is the logic of progressive rollouts: a pool's weight or
// a flag's percentage raised step by step, each step held for a bake time
// and advanced only while the guard judges the target healthy on enough
// samples; a breach aborts the rollout and puts the target back where it
// was.
//
// It is pure: no Caddy, no etcd, no clock of its own. The store keeps a
// Rollout (configstore), a driver elected among the gateway instances asks
// Next what to do with the current document and the guard's view, and does
// it (control, which also holds the admin API's start, pause, resume and
// abort).
package rollout

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/a8e2c47e/switchback/gateway"
	"github.com/a8e2c47e/switchback/printable"
)

// State of a rollout. Running and paused rollouts are active: a deployment
// has at most one active rollout.
type State string

// States.
const (
	Running State = "running"
	Paused  State = "paused"
	Aborted State = "aborted"
	Done    State = "done"
)

// Active reports whether the rollout still holds its deployment.
func (s State) Active() bool { return s == Running || s == Paused }

// Event kinds of the events log a rollout records (configstore.Event.Kind).
const (
	EventStarted = "rollout_started"
	EventStep    = "rollout_step"
	EventPaused  = "rollout_paused"
	EventResumed = "rollout_resumed"
	EventAborted = "rollout_aborted"
	EventDone    = "rollout_done"
)

// MaxSteps is the most steps one rollout may have.
const MaxSteps = 100

// Rollout is one progressive rollout of a deployment's pool or flag, as
// the store keeps it.
type Rollout struct {
	ID         string `json:"id"`
	Deployment string `json:"deployment"`
	// Target is "pool:NAME" or "flag:NAME".
	Target string `json:"target"`
	// Steps are the values the target goes through, in percent, strictly
	// increasing; the rollout is done once the last one has baked.
	Steps []float64 `json:"steps"`
	// Bake is how long each step holds before the next one.
	Bake   gateway.Duration `json:"bake"`
	Reason string           `json:"reason,omitempty"`
	Author string           `json:"author"`
	State  State            `json:"state"`
	// Step is the index of the step applied; -1 before the first.
	Step int `json:"step"`
	// StepStarted is when the step was applied, or the rollout resumed:
	// the bake runs from here.
	StepStarted time.Time `json:"step_started,omitzero"`
	// From is the target's value before the rollout, restored on abort.
	From float64 `json:"from"`
	// Before is every pool's weight before the rollout (pool targets):
	// where the traffic goes back to when the other pools have none left.
	Before map[string]float64 `json:"before,omitempty"`
	// Version is the document version the rollout last wrote.
	Version uint64 `json:"version,omitempty"`
	// Message says what the rollout is waiting for, or why it ended.
	Message string    `json:"message,omitempty"`
	Created time.Time `json:"created"`
	Updated time.Time `json:"updated"`
}

// RecordKind is the kind of store record (configstore.Store.PutRecord) a
// deployment's current or last rollout is kept as.
const RecordKind = "rollouts"

// Decode reads the stored rollout of deployment name; a record that does
// not decode, or holds another deployment's rollout, is an error.
func Decode(name string, b []byte) (Rollout, error) {
	var r Rollout
	if err := json.Unmarshal(b, &r); err != nil {
		return Rollout{}, fmt.Errorf("rollout of %s: %w", name, err)
	}
	if r.Deployment != name {
		return Rollout{}, fmt.Errorf("rollout of %s: holds deployment %q", name, r.Deployment)
	}
	return r, nil
}

// Stamp sets Updated to now, and Created too the first time, before the
// rollout is stored.
func (r *Rollout) Stamp(now time.Time) {
	r.Updated = now.UTC().Round(0)
	if r.Created.IsZero() {
		r.Created = r.Updated
	}
}

// Target kinds.
const (
	KindPool = "pool"
	KindFlag = "flag"
)

// Target is what a rollout moves: a pool's weight or a flag's percentage.
type Target struct {
	Kind string // KindPool or KindFlag
	Name string
}

func (t Target) String() string { return t.Kind + ":" + t.Name }

// describe names the target for messages: "pool green".
func (t Target) describe() string { return t.Kind + " " + t.Name }

const targetWant = "want pool:NAME or flag:NAME, like pool:green or flag:new_payment_flow"

// ParseTarget reads "pool:NAME" or "flag:NAME".
func ParseTarget(s string) (Target, error) {
	kind, name, ok := strings.Cut(s, ":")
	if !ok || (kind != KindPool && kind != KindFlag) {
		return Target{}, &gateway.FieldError{Field: "target", Value: strconv.Quote(s), Want: targetWant}
	}
	if !gateway.ValidName(name) {
		return Target{}, &gateway.FieldError{Field: "target", Value: strconv.Quote(s),
			Want: kind + " name: " + gateway.NameRule}
	}
	return Target{Kind: kind, Name: name}, nil
}

// Request is what an operator asks for.
type Request struct {
	Target string    `json:"target"`
	Steps  []float64 `json:"steps"`
	// Bake is a Go duration such as "30m"; "0s" advances as soon as the
	// guard has enough samples.
	Bake   string `json:"bake"`
	Reason string `json:"reason,omitempty"`
}

// New validates req against the deployment's current document and returns
// the rollout to store: running, before its first step. Every rejection is
// a *gateway.FieldError naming the request field (target, steps[i], bake)
// or, for a deployment without a guard to judge the steps, guard.
func New(req Request, cfg gateway.Config, id, author string, now time.Time) (Rollout, error) {
	t, err := ParseTarget(req.Target)
	if err != nil {
		return Rollout{}, err
	}
	from, exists := value(cfg, t)
	switch {
	case t.Kind == KindPool && !exists:
		return Rollout{}, &gateway.FieldError{Field: "target", Value: strconv.Quote(req.Target),
			Want: "unknown pool; pools are " + strings.Join(slices.Sorted(maps.Keys(cfg.Pools)), ", ")}
	case t.Kind == KindFlag && !exists && len(cfg.Flags) >= gateway.MaxFlags:
		return Rollout{}, &gateway.FieldError{Field: "target", Value: strconv.Quote(req.Target),
			Want: fmt.Sprintf("a new flag, but the deployment has the most flags it may (%d)", gateway.MaxFlags)}
	}
	if err := validateSteps(req.Steps, t, from); err != nil {
		return Rollout{}, err
	}
	bake, err := parseBake(req.Bake)
	if err != nil {
		return Rollout{}, err
	}
	if cfg.Guard == nil {
		return Rollout{}, &gateway.FieldError{Field: "guard", Value: "none",
			Want: "a rollout advances only while the deployment's guard judges the target healthy; give " + cfg.Name + " a guard (error_rate or p95) first"}
	}
	now = now.UTC().Round(0)
	r := Rollout{
		ID: id, Deployment: cfg.Name, Target: t.String(), Steps: append([]float64(nil), req.Steps...),
		Bake: bake, Reason: req.Reason, Author: author, State: Running, Step: -1, From: from,
		Created: now, Updated: now, Message: "waiting for the elected gateway to apply step 1/" + strconv.Itoa(len(req.Steps)),
	}
	if t.Kind == KindPool {
		r.Before = make(map[string]float64, len(cfg.Pools))
		for p := range cfg.Pools {
			r.Before[p] = cfg.Weights[p]
		}
	}
	return r, nil
}

func validateSteps(steps []float64, t Target, from float64) error {
	if len(steps) == 0 {
		return &gateway.FieldError{Field: "steps", Value: "[]", Want: "want percentages in increasing order, like [1, 10, 50, 100]"}
	}
	if len(steps) > MaxSteps {
		return &gateway.FieldError{Field: "steps", Value: strconv.Itoa(len(steps)) + " steps", Want: "at most " + strconv.Itoa(MaxSteps) + " steps"}
	}
	for i, v := range steps {
		field := "steps[" + strconv.Itoa(i) + "]"
		bp, ok := basisPoints(v)
		if !ok || bp == 0 {
			return &gateway.FieldError{Field: field, Value: gateway.FormatPercent(v),
				Want: "want a percentage above 0 and at most 100, with at most two decimals"}
		}
		if i == 0 && bp <= mustBP(from) {
			return &gateway.FieldError{Field: field, Value: gateway.FormatPercent(v),
				Want: fmt.Sprintf("the first step must be above %s's current %s%%", t.describe(), gateway.FormatPercent(from))}
		}
		if i > 0 && bp <= mustBP(steps[i-1]) {
			return &gateway.FieldError{Field: field, Value: gateway.FormatPercent(v),
				Want: fmt.Sprintf("steps must increase: want more than steps[%d], %s", i-1, gateway.FormatPercent(steps[i-1]))}
		}
	}
	return nil
}

func parseBake(s string) (gateway.Duration, error) {
	const want = "want a duration like 30m or 1h (0s advances as soon as the guard has enough samples)"
	if s == "" {
		return 0, &gateway.FieldError{Field: "bake", Want: want}
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, &gateway.FieldError{Field: "bake", Value: strconv.Quote(s), Want: want}
	}
	return gateway.Duration(d), nil
}

// Health is the guard's view of the target's population on the instance
// driving the rollout: the pool, or the flag-on cohort.
type Health struct {
	// Breach is the guard's verdict, empty while the target is healthy.
	Breach string
	// Samples is the requests of the target in the guard's window.
	Samples uint64
	// MinSamples is the guard's min_requests.
	MinSamples uint64
	// Known is whether the guard has a current view of the target (it has
	// judged it recently, at the document's version or later).
	Known bool
}

// Doc is the deployment's current version, as Next needs it.
type Doc struct {
	Config gateway.Config
	// ByGuard is whether the guard wrote this version (a fallback).
	ByGuard bool
	// Reason is the version's reason: the guard's figures after a fallback.
	Reason string
}

// Action is what Next decides.
type Action int

// Actions.
const (
	// Hold: nothing to write; Message says what the rollout waits for.
	Hold Action = iota
	// Apply: write Mutate as a new version, then record Step as applied.
	Apply
	// Finish: the last step has baked healthy; record the rollout done.
	Finish
	// Abort: write Mutate, when not nil, to put the target back, then
	// record the rollout aborted with Message.
	Abort
)

func (a Action) String() string {
	switch a {
	case Hold:
		return "hold"
	case Apply:
		return "apply"
	case Finish:
		return "finish"
	case Abort:
		return "abort"
	}
	return "action(" + strconv.Itoa(int(a)) + ")"
}

// Decision is the outcome of Next.
type Decision struct {
	Action Action
	// Step is the index of the step to apply (Apply).
	Step int
	// Value is the target's value Mutate sets: the step's (Apply) or From
	// (Abort).
	Value float64
	// Mutate edits the document; nil when there is nothing to write. It
	// computes from the document it is given, so it may run again on a
	// newer one.
	Mutate func(*gateway.Config) error
	// Message is the rollout's new Message.
	Message string
}

// Next decides what a running rollout does now, given the deployment's
// current document and the guard's view of the target:
//
//   - abort, without writing, when the target has vanished, or when its
//     value is not the one the rollout set: after a guard fallback (the
//     guard has already moved it somewhere safe; putting back From could
//     expose a failing pool again) or after any other writer (an operator
//     took over);
//   - abort and roll back to From when the guard reports a breach (the
//     message says why; whoever writes the rollback says what it did);
//   - apply the first step at once;
//   - hold while the step bakes, while the guard has no current view, and
//     while it has fewer samples than its min_requests;
//   - then apply the next step, or finish after the last.
//
// A rollout that is not running holds.
func Next(r Rollout, doc Doc, h Health, now time.Time) Decision {
	if r.State != Running {
		return Decision{Action: Hold, Message: r.Message}
	}
	t, err := ParseTarget(r.Target)
	if err != nil {
		return Decision{Action: Abort, Message: "cannot read the rollout's target: " + err.Error()}
	}
	if len(r.Steps) == 0 || r.Step < -1 || r.Step >= len(r.Steps) {
		return Decision{Action: Abort, Message: fmt.Sprintf("rollout record is inconsistent: step %d of %d", r.Step, len(r.Steps))}
	}
	cur, exists := value(doc.Config, t)
	if !exists && (t.Kind == KindPool || r.Step >= 0) {
		return Decision{Action: Abort, Message: fmt.Sprintf("%s no longer exists; nothing to roll back", t.describe())}
	}
	want := r.set()
	if mustBP(cur) != mustBP(want) {
		// The step's version was written but the record of it was lost
		// (the driver stopped in between, or lost a race): carry on from it.
		if r.lostStep(cur, doc) {
			return r.apply(t, r.Step+1)
		}
		if doc.ByGuard {
			return Decision{Action: Abort, Message: fmt.Sprintf("%s; the guard moved %s from %s%% to %s%% (%s)",
				r.at(), t.describe(), gateway.FormatPercent(want), gateway.FormatPercent(cur), doc.Reason)}
		}
		return Decision{Action: Abort, Message: fmt.Sprintf("%s; %s was changed outside the rollout, from %s%% to %s%%; left as it is",
			r.at(), t.describe(), gateway.FormatPercent(want), gateway.FormatPercent(cur))}
	}
	if h.Breach != "" {
		return Decision{Action: Abort, Value: r.From, Mutate: Rollback(r),
			Message: fmt.Sprintf("%s; %s breached its guard: %s", r.at(), t.describe(), h.Breach)}
	}
	if r.Step < 0 {
		return r.apply(t, 0)
	}
	if r.BakeLeft(now) > 0 {
		return Decision{Action: Hold, Message: "baking " + r.stepName(r.Step)}
	}
	if !h.Known {
		return Decision{Action: Hold, Message: r.stepName(r.Step) + " baked; waiting for the guard's current view of " + t.describe()}
	}
	if h.Samples < h.MinSamples {
		return Decision{Action: Hold, Message: fmt.Sprintf("%s baked; waiting for %d requests of %s in the guard's window",
			r.stepName(r.Step), h.MinSamples, t.describe())}
	}
	if r.Step == len(r.Steps)-1 {
		return Decision{Action: Finish, Message: fmt.Sprintf("all %d steps baked healthy: %s at %s%%", len(r.Steps), t.describe(), gateway.FormatPercent(want))}
	}
	return r.apply(t, r.Step+1)
}

// Holds reports whether the rollout still holds its target in doc: the
// target is at the value the rollout last set (its step's, From before the
// first), or doc is the version of its next step whose record was lost.
// An abort puts back only a target the rollout holds; one that anybody
// else has moved since stays where they put it.
func Holds(r Rollout, doc Doc) bool {
	t, err := ParseTarget(r.Target)
	if err != nil || r.Step < -1 || r.Step >= len(r.Steps) {
		return false
	}
	cur, exists := value(doc.Config, t)
	return exists && (mustBP(cur) == mustBP(r.set()) || r.lostStep(cur, doc))
}

// set is the target's value the rollout last set: its step's, or From
// before the first. r.Step must be in range.
func (r Rollout) set() float64 {
	if r.Step < 0 {
		return r.From
	}
	return r.Steps[r.Step]
}

// lostStep reports whether doc, with the target at cur, is the version of
// the rollout's next step, written by the rollout but not recorded.
func (r Rollout) lostStep(cur float64, doc Doc) bool {
	next := r.Step + 1
	return next < len(r.Steps) && mustBP(cur) == mustBP(r.Steps[next]) && strings.HasPrefix(doc.Reason, reasonPrefix(r))
}

// BakeLeft is how long the applied step still bakes at now: 0 once it has
// baked, and when the rollout is not running or has applied no step yet.
func (r Rollout) BakeLeft(now time.Time) time.Duration {
	if r.State != Running || r.Step < 0 {
		return 0
	}
	return max(time.Duration(r.Bake)-now.Sub(r.StepStarted), 0)
}

func (r Rollout) apply(t Target, i int) Decision {
	v := r.Steps[i]
	return Decision{Action: Apply, Step: i, Value: v, Mutate: set(t, v, r.Before), Message: "baking " + r.stepName(i)}
}

// stepName is "step 2/4 (pool green 10%)".
func (r Rollout) stepName(i int) string {
	t, _ := ParseTarget(r.Target)
	return fmt.Sprintf("step %d/%d (%s %s%%)", i+1, len(r.Steps), t.describe(), gateway.FormatPercent(r.Steps[i]))
}

// at says where the rollout stands, for abort messages.
func (r Rollout) at() string {
	if r.Step < 0 {
		return "before step 1/" + strconv.Itoa(len(r.Steps))
	}
	return "at " + r.stepName(r.Step)
}

// Rollback returns the edit that puts the target back to From: a pool's
// weight, the rest of the traffic shared among the other pools as Apply
// does; a flag's percentage. A target that no longer exists is left alone.
func Rollback(r Rollout) func(*gateway.Config) error {
	t, err := ParseTarget(r.Target)
	if err != nil {
		return func(*gateway.Config) error { return err }
	}
	restore := set(t, r.From, r.Before)
	return func(c *gateway.Config) error {
		if _, ok := value(*c, t); !ok {
			return nil
		}
		return restore(c)
	}
}

func reasonPrefix(r Rollout) string { return "rollout " + r.ID + " " }

// StepReason is the reason recorded with the version that applies step i:
// "rollout r-1a2b step 2/4: pool green 10% (ship v2)".
func StepReason(r Rollout, i int) string {
	t, _ := ParseTarget(r.Target)
	s := fmt.Sprintf("%sstep %d/%d: %s %s%%", reasonPrefix(r), i+1, len(r.Steps), t.describe(), gateway.FormatPercent(r.Steps[i]))
	return withReason(s, r.Reason)
}

// AbortReason is the reason recorded with a rollback version: "rollout
// r-1a2b aborted " and why, which reads on from there ("at step 2/4 ...",
// "by alice: ...").
func AbortReason(r Rollout, why string) string {
	return printable.Truncate(reasonPrefix(r)+"aborted "+why, gateway.MaxReason)
}

func withReason(s, reason string) string {
	if reason == "" {
		return s
	}
	return printable.Truncate(s+" ("+reason, gateway.MaxReason-1) + ")"
}

// value returns the target's value in cfg and whether it exists; a pool
// missing from Weights has weight 0.
func value(cfg gateway.Config, t Target) (float64, bool) {
	switch t.Kind {
	case KindPool:
		if _, ok := cfg.Pools[t.Name]; !ok {
			return 0, false
		}
		return cfg.Weights[t.Name], true
	case KindFlag:
		f, ok := cfg.Flags[t.Name]
		return f.Percent, ok
	}
	return 0, false
}

// set returns the edit that gives the target value v.
func set(t Target, v float64, before map[string]float64) func(*gateway.Config) error {
	if t.Kind == KindFlag {
		return func(c *gateway.Config) error {
			if c.Flags == nil {
				c.Flags = map[string]gateway.Flag{}
			}
			c.Flags[t.Name] = gateway.Flag{Percent: v}
			return nil
		}
	}
	return func(c *gateway.Config) error { return SetWeight(c, t.Name, v, before) }
}

// SetWeight gives pool the weight v (percent) and shares the rest of the
// traffic among the other pools in proportion to their weights in c, or,
// when they all have 0, in proportion to before (the weights before the
// rollout). Shares are whole basis points (0.01%), the remainder going to
// the largest fractions, so the weights always sum to exactly 100.
func SetWeight(c *gateway.Config, pool string, v float64, before map[string]float64) error {
	if _, ok := c.Pools[pool]; !ok {
		return &gateway.FieldError{Field: "target", Value: strconv.Quote("pool:" + pool),
			Want: "unknown pool; pools are " + strings.Join(slices.Sorted(maps.Keys(c.Pools)), ", ")}
	}
	target, ok := basisPoints(v)
	if !ok {
		return &gateway.FieldError{Field: "weights." + pool, Value: gateway.FormatPercent(v), Want: "want a percentage from 0 to 100 with at most two decimals"}
	}
	var others []string
	for _, p := range slices.Sorted(maps.Keys(c.Pools)) {
		if p != pool {
			others = append(others, p)
		}
	}
	rest := gateway.Buckets - target
	shares, err := share(rest, others, c.Weights)
	if err != nil {
		shares, err = share(rest, others, before)
	}
	if err != nil {
		return &gateway.FieldError{Field: "weights", Value: gateway.DescribeWeights(c.Weights),
			Want: fmt.Sprintf("%s%% of the traffic must go to pools other than %s, but none of them has or had any", gateway.FormatBasisPoints(rest), pool)}
	}
	if c.Weights == nil {
		c.Weights = map[string]float64{}
	}
	c.Weights[pool] = float64(target) / 100
	for i, p := range others {
		if _, had := c.Weights[p]; had || shares[i] > 0 {
			c.Weights[p] = float64(shares[i]) / 100
		}
	}
	return nil
}

var errNoWeights = fmt.Errorf("no weights to share by")

// share divides rest basis points among pools in proportion to weights
// (largest remainder; ties go to the pool first by name).
func share(rest int, pools []string, weights map[string]float64) ([]int, error) {
	out := make([]int, len(pools))
	if rest == 0 {
		return out, nil
	}
	w := make([]int, len(pools))
	sum := 0
	for i, p := range pools {
		bp, ok := basisPoints(weights[p])
		if !ok {
			bp = 0
		}
		w[i] = bp
		sum += bp
	}
	if sum == 0 {
		return nil, errNoWeights
	}
	given := 0
	rem := make([]int, len(pools))
	for i := range pools {
		out[i] = rest * w[i] / sum
		rem[i] = rest * w[i] % sum
		given += out[i]
	}
	for ; given < rest; given++ {
		best := -1
		for i := range pools {
			if w[i] > 0 && (best < 0 || rem[i] > rem[best]) {
				best = i
			}
		}
		out[best]++
		rem[best] = -1
	}
	return out, nil
}

// basisPoints is gateway.BasisPoints as a lookup: false for a value that
// is not a valid percentage.
func basisPoints(pct float64) (int, bool) {
	bp, err := gateway.BasisPoints(pct)
	return bp, err == nil
}

// mustBP compares values stored in documents, which are valid.
func mustBP(pct float64) int { bp, _ := gateway.BasisPoints(pct); return bp }
