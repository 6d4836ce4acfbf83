package rollout

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/a8e2c47e/switchback/gateway"
)

var t0 = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

// shop is a two-pool deployment with a guard, blue live.
func shop() gateway.Config {
	return gateway.Config{
		Name: "shop", Version: 3,
		Pools: map[string]gateway.Pool{
			"blue":  {Upstreams: []string{"127.0.0.1:9001"}},
			"green": {Upstreams: []string{"127.0.0.1:9002"}},
		},
		Weights: map[string]float64{"blue": 100, "green": 0},
		Flags:   map[string]gateway.Flag{"new_cart": {Percent: 5}},
		Guard:   &gateway.Guard{ErrorRate: 5},
	}
}

// three is a three-pool deployment: green is the new release.
func three(blue, red, green float64) gateway.Config {
	c := shop()
	c.Pools["red"] = gateway.Pool{Upstreams: []string{"127.0.0.1:9003"}}
	c.Weights = map[string]float64{"blue": blue, "red": red, "green": green}
	return c
}

func TestNewRollout(t *testing.T) {
	noGuard := shop()
	noGuard.Guard = nil
	full := shop()
	full.Flags = map[string]gateway.Flag{}
	for i := range gateway.MaxFlags {
		full.Flags["f"+string(rune('a'+i/26))+string(rune('a'+i%26))] = gateway.Flag{}
	}
	tests := []struct {
		name  string
		req   Request
		cfg   gateway.Config
		field string // "" = accepted
		want  string // substring of the error
	}{
		{"pool", Request{Target: "pool:green", Steps: []float64{1, 10, 50, 100}, Bake: "30m"}, shop(), "", ""},
		{"new flag", Request{Target: "flag:dark_mode", Steps: []float64{0.5, 25.25}, Bake: "0s"}, shop(), "", ""},
		{"existing flag above its value", Request{Target: "flag:new_cart", Steps: []float64{10, 50}, Bake: "1h"}, shop(), "", ""},
		{"last step below 100", Request{Target: "pool:green", Steps: []float64{5, 20}, Bake: "1m"}, shop(), "", ""},

		{"no kind", Request{Target: "green", Steps: []float64{10}, Bake: "1m"}, shop(), "target", "want pool:NAME or flag:NAME"},
		{"wrong kind", Request{Target: "host:green", Steps: []float64{10}, Bake: "1m"}, shop(), "target", `"host:green"`},
		{"bad name", Request{Target: "flag:no spaces", Steps: []float64{10}, Bake: "1m"}, shop(), "target", "flag name"},
		{"unknown pool", Request{Target: "pool:purple", Steps: []float64{10}, Bake: "1m"}, shop(), "target", "unknown pool; pools are blue, green"},
		{"too many flags", Request{Target: "flag:one_more", Steps: []float64{10}, Bake: "1m"}, full, "target", "most flags"},
		{"no steps", Request{Target: "pool:green", Bake: "1m"}, shop(), "steps", "increasing order"},
		{"too many steps", Request{Target: "pool:green", Steps: make([]float64, MaxSteps+1), Bake: "1m"}, shop(), "steps", "at most 100 steps"},
		{"zero step", Request{Target: "pool:green", Steps: []float64{0, 10}, Bake: "1m"}, shop(), "steps[0]", "above 0 and at most 100"},
		{"over 100", Request{Target: "pool:green", Steps: []float64{10, 150}, Bake: "1m"}, shop(), "steps[1]", "150"},
		{"three decimals", Request{Target: "pool:green", Steps: []float64{10, 10.125}, Bake: "1m"}, shop(), "steps[1]", "two decimals"},
		{"not increasing", Request{Target: "pool:green", Steps: []float64{10, 50, 50}, Bake: "1m"}, shop(), "steps[2]", "more than steps[1], 50"},
		{"first not above current", Request{Target: "flag:new_cart", Steps: []float64{5, 10}, Bake: "1m"}, shop(), "steps[0]", "above flag new_cart's current 5%"},
		{"pool already at 100", Request{Target: "pool:blue", Steps: []float64{100}, Bake: "1m"}, shop(), "steps[0]", "current 100%"},
		{"no bake", Request{Target: "pool:green", Steps: []float64{10}}, shop(), "bake", "want a duration like 30m"},
		{"bake without unit", Request{Target: "pool:green", Steps: []float64{10}, Bake: "30"}, shop(), "bake", `"30"`},
		{"negative bake", Request{Target: "pool:green", Steps: []float64{10}, Bake: "-1m"}, shop(), "bake", `"-1m"`},
		{"no guard", Request{Target: "pool:green", Steps: []float64{10}, Bake: "1m"}, noGuard, "guard", "give shop a guard"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := New(tt.req, tt.cfg, "r-1", "alice", t0)
			if tt.field == "" {
				if err != nil {
					t.Fatalf("New = %v, want accepted", err)
				}
				if r.State != Running || r.Step != -1 || r.Deployment != "shop" || r.Author != "alice" || !r.Created.Equal(t0) {
					t.Errorf("New = %+v", r)
				}
				return
			}
			var fe *gateway.FieldError
			if !errors.As(err, &fe) || fe.Field != tt.field || !strings.Contains(fe.Error(), tt.want) {
				t.Fatalf("New = %v, want a *FieldError of %s mentioning %q", err, tt.field, tt.want)
			}
		})
	}
}

func TestNewRolloutRecordsWhereItStarts(t *testing.T) {
	r, err := New(Request{Target: "pool:green", Steps: []float64{10, 100}, Bake: "30m", Reason: "v2"}, three(60, 40, 0), "r-1", "alice", t0)
	if err != nil {
		t.Fatal(err)
	}
	if r.From != 0 || r.Before["blue"] != 60 || r.Before["red"] != 40 || time.Duration(r.Bake) != 30*time.Minute {
		t.Errorf("New = from %v before %v bake %v", r.From, r.Before, r.Bake)
	}
	f, err := New(Request{Target: "flag:new_cart", Steps: []float64{50}, Bake: "0s"}, shop(), "r-2", "alice", t0)
	if err != nil || f.From != 5 || f.Before != nil {
		t.Errorf("flag rollout = from %v before %v, %v; want from 5 and no pool weights", f.From, f.Before, err)
	}
	// The JSON is what the store keeps and the API shows.
	b, _ := json.Marshal(r)
	for _, key := range []string{`"target":"pool:green"`, `"steps":[10,100]`, `"bake":"30m0s"`, `"state":"running"`, `"step":-1`, `"from":0`} {
		if !strings.Contains(string(b), key) {
			t.Errorf("JSON %s lacks %s", b, key)
		}
	}
	var back Rollout
	if err := json.Unmarshal(b, &back); err != nil || back.Bake != r.Bake || back.Step != -1 || !back.Created.Equal(r.Created) {
		t.Errorf("round trip = %+v, %v", back, err)
	}
}

// at returns a running rollout of target at step (index), applied at
// started.
func at(target string, steps []float64, step int, from float64, started time.Time, before map[string]float64) Rollout {
	return Rollout{
		ID: "r-1", Deployment: "shop", Target: target, Steps: steps, Bake: gateway.Duration(time.Minute),
		State: Running, Step: step, StepStarted: started, From: from, Before: before,
	}
}

func weights(pairs ...any) map[string]float64 {
	w := map[string]float64{}
	for i := 0; i < len(pairs); i += 2 {
		w[pairs[i].(string)] = float64(pairs[i+1].(int))
	}
	return w
}

func withWeights(c gateway.Config, w map[string]float64) gateway.Config {
	c.Weights = w
	return c
}

func withFlag(c gateway.Config, name string, pct float64) gateway.Config {
	c.Flags = map[string]gateway.Flag{name: {Percent: pct}}
	return c
}

func TestRolloutNext(t *testing.T) {
	blue100 := map[string]float64{"blue": 100, "green": 0}
	pool := func(step int, started time.Time) Rollout {
		return at("pool:green", []float64{10, 50, 100}, step, 0, started, blue100)
	}
	flag := func(step int, started time.Time) Rollout {
		return at("flag:new_cart", []float64{10, 50}, step, 5, started, nil)
	}
	paused := pool(0, t0)
	paused.State, paused.Message = Paused, "paused by alice"
	resumed := pool(0, t0.Add(time.Hour)) // resumed an hour after the step: the bake starts again
	aborted := pool(1, t0)
	aborted.State = Aborted
	lost := pool(0, t0)
	noPool := shop()
	delete(noPool.Pools, "green")
	delete(noPool.Weights, "green")
	noFlag := shop()
	noFlag.Flags = nil
	newFlag := at("flag:dark_mode", []float64{1, 100}, -1, 0, t0, nil)

	healthy := Health{Known: true, Samples: 40, MinSamples: 20}
	baked := t0.Add(time.Minute)
	doc := func(c gateway.Config) Doc { return Doc{Config: c, Reason: "by hand"} }

	tests := []struct {
		name    string
		r       Rollout
		doc     Doc
		h       Health
		now     time.Time
		action  Action
		step    int                // Apply: the step
		message string             // substring of the decision's message
		weights map[string]float64 // after Mutate, when it is not nil
		flag    float64            // new_cart (or the rollout's flag) after Mutate
	}{
		{"first step at once, before any samples", pool(-1, t0), doc(shop()), Health{}, t0,
			Apply, 0, "baking step 1/3 (pool green 10%)", weights("blue", 90, "green", 10), 0},
		{"baking", pool(0, t0), doc(withWeights(shop(), weights("blue", 90, "green", 10))), healthy, t0.Add(59 * time.Second),
			Hold, 0, "baking step 1/3", nil, 0},
		{"baked, no current guard view", pool(0, t0), doc(withWeights(shop(), weights("blue", 90, "green", 10))), Health{MinSamples: 20}, baked,
			Hold, 0, "waiting for the guard's current view of pool green", nil, 0},
		{"baked, too few samples", pool(0, t0), doc(withWeights(shop(), weights("blue", 90, "green", 10))), Health{Known: true, Samples: 19, MinSamples: 20}, baked,
			Hold, 0, "waiting for 20 requests of pool green", nil, 0},
		{"baked and healthy: next step", pool(0, t0), doc(withWeights(shop(), weights("blue", 90, "green", 10))), healthy, baked,
			Apply, 1, "baking step 2/3 (pool green 50%)", weights("blue", 50, "green", 50), 0},
		{"last step baked: done", pool(2, t0), doc(withWeights(shop(), weights("blue", 0, "green", 100))), healthy, baked,
			Finish, 0, "all 3 steps baked healthy: pool green at 100%", nil, 0},
		{"breach while baking: roll back", pool(1, t0), doc(withWeights(shop(), weights("blue", 50, "green", 50))),
			Health{Known: true, Samples: 40, MinSamples: 20, Breach: "error rate 50.0% > 5.0%"}, t0.Add(time.Second),
			Abort, 0, "at step 2/3 (pool green 50%); pool green breached its guard: error rate 50.0% > 5.0%", weights("blue", 100, "green", 0), 0},
		{"breach at 100%: traffic back to the pools before", pool(2, t0), doc(withWeights(shop(), weights("blue", 0, "green", 100))),
			Health{Breach: "p95 2s > 500ms"}, baked,
			Abort, 0, "p95 2s > 500ms", weights("blue", 100, "green", 0), 0},
		{"guard moved the target", pool(1, t0), Doc{Config: withWeights(shop(), weights("blue", 100, "green", 0)), ByGuard: true, Reason: "error rate 100.0% > 5.0%; traffic to blue"},
			healthy, baked, Abort, 0, "the guard moved pool green from 50% to 0% (error rate 100.0% > 5.0%; traffic to blue)", nil, 0},
		{"someone else moved the target", pool(1, t0), doc(withWeights(shop(), weights("blue", 70, "green", 30))), healthy, baked,
			Abort, 0, "pool green was changed outside the rollout, from 50% to 30%; left as it is", nil, 0},
		{"changed before the first step", pool(-1, t0), doc(withWeights(shop(), weights("blue", 80, "green", 20))), Health{}, t0,
			Abort, 0, "before step 1/3; pool green was changed outside the rollout, from 0% to 20%", nil, 0},
		{"own step written, record lost", lost, Doc{Config: withWeights(shop(), weights("blue", 50, "green", 50)), Reason: "rollout r-1 step 2/3: pool green 50%"},
			Health{}, t0, Apply, 1, "baking step 2/3", weights("blue", 50, "green", 50), 0},
		{"pool vanished", pool(1, t0), doc(noPool), healthy, baked, Abort, 0, "pool green no longer exists", nil, 0},
		{"paused holds, breach or not", paused, doc(withWeights(shop(), weights("blue", 90, "green", 10))), Health{Breach: "bad"}, baked.Add(time.Hour),
			Hold, 0, "paused by alice", nil, 0},
		{"resumed: the bake starts again", resumed, doc(withWeights(shop(), weights("blue", 90, "green", 10))), healthy, t0.Add(time.Hour + 30*time.Second),
			Hold, 0, "baking step 1/3", nil, 0},
		{"finished rollouts hold", aborted, doc(shop()), healthy, baked, Hold, 0, "", nil, 0},

		{"flag: first step", flag(-1, t0), doc(shop()), Health{}, t0, Apply, 0, "baking step 1/2 (flag new_cart 10%)", nil, 10},
		{"flag: baked and healthy", flag(0, t0), doc(withFlag(shop(), "new_cart", 10)), healthy, baked, Apply, 1, "flag new_cart 50%", nil, 50},
		{"flag: breach rolls back to where it was", flag(1, t0), doc(withFlag(shop(), "new_cart", 50)), Health{Known: true, Breach: "error rate 9.0% > 5.0%"}, t0,
			Abort, 0, "at step 2/2 (flag new_cart 50%); flag new_cart breached its guard: error rate 9.0% > 5.0%", nil, 5},
		{"flag: switched off by the guard", flag(1, t0), Doc{Config: withFlag(shop(), "new_cart", 0), ByGuard: true, Reason: "flag set to 0%"}, healthy, baked,
			Abort, 0, "the guard moved flag new_cart from 50% to 0%", nil, 0},
		{"flag: deleted", flag(1, t0), doc(noFlag), healthy, baked, Abort, 0, "flag new_cart no longer exists", nil, 0},
		{"new flag: created by the first step", newFlag, doc(shop()), Health{}, t0, Apply, 0, "flag dark_mode 1%", nil, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Next(tt.r, tt.doc, tt.h, tt.now)
			if got.Action != tt.action || (tt.action == Apply && got.Step != tt.step) || !strings.Contains(got.Message, tt.message) {
				t.Fatalf("Next = %v step %d %q, want %v step %d mentioning %q", got.Action, got.Step, got.Message, tt.action, tt.step, tt.message)
			}
			wantWrite := tt.weights != nil || tt.flag != 0
			if (got.Mutate != nil) != wantWrite {
				t.Fatalf("Next wrote %v, want a write: %v", got.Mutate != nil, wantWrite)
			}
			if got.Mutate == nil {
				return
			}
			c := tt.doc.Config.Clone()
			if err := got.Mutate(&c); err != nil {
				t.Fatalf("mutate: %v", err)
			}
			if err := c.Validate(); err != nil {
				t.Fatalf("mutated document does not validate: %v", err)
			}
			if tt.weights != nil {
				for p, w := range tt.weights {
					if c.Weights[p] != w {
						t.Errorf("weights %v, want %v", c.Weights, tt.weights)
						break
					}
				}
			}
			if tt.flag != 0 {
				target, _ := ParseTarget(tt.r.Target)
				if got := c.Flags[target.Name].Percent; got != tt.flag {
					t.Errorf("%s at %v%%, want %v%%", target, got, tt.flag)
				}
			}
		})
	}
}

func TestRolloutSetWeight(t *testing.T) {
	tests := []struct {
		name   string
		cfg    gateway.Config
		pool   string
		v      float64
		before map[string]float64
		want   map[string]float64
	}{
		{"two pools", withWeights(shop(), weights("blue", 100, "green", 0)), "green", 10, nil, weights("blue", 90, "green", 10)},
		{"two pools, all in", withWeights(shop(), weights("blue", 50, "green", 50)), "green", 100, nil, weights("blue", 0, "green", 100)},
		{"two pools, back from 100 by the weights before", withWeights(shop(), weights("blue", 0, "green", 100)), "green", 0,
			weights("blue", 100, "green", 0), weights("blue", 100, "green", 0)},
		{"three pools in proportion", three(60, 40, 0), "green", 10, nil, map[string]float64{"blue": 54, "red": 36, "green": 10}},
		{"three pools, one idle", three(100, 0, 0), "green", 25, nil, map[string]float64{"blue": 75, "red": 0, "green": 25}},
		{"three pools, remainder to the largest fraction", three(33.33, 66.67, 0), "green", 10, nil, map[string]float64{"blue": 30, "red": 60, "green": 10}},
		{"three pools, even split, ties by name", three(50, 50, 0), "green", 0.01, nil, map[string]float64{"blue": 50, "red": 49.99, "green": 0.01}},
		{"three pools, back from 100", three(0, 0, 100), "green", 0, weights("blue", 60, "red", 40, "green", 0), map[string]float64{"blue": 60, "red": 40, "green": 0}},
		{"three pools, back part way", three(0, 0, 100), "green", 20, weights("blue", 75, "red", 25, "green", 0), map[string]float64{"blue": 60, "red": 20, "green": 20}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := tt.cfg.Clone()
			if err := SetWeight(&c, tt.pool, tt.v, tt.before); err != nil {
				t.Fatal(err)
			}
			if err := c.Validate(); err != nil {
				t.Fatalf("result does not validate: %v", err)
			}
			for p, w := range tt.want {
				if c.Weights[p] != w {
					t.Fatalf("weights %v, want %v", c.Weights, tt.want)
				}
			}
		})
	}

	// Nowhere for the rest of the traffic to go.
	c := withWeights(shop(), weights("blue", 0, "green", 100))
	var fe *gateway.FieldError
	if err := SetWeight(&c, "green", 10, nil); !errors.As(err, &fe) || fe.Field != "weights" || !strings.Contains(fe.Want, "none of them has or had any") {
		t.Errorf("SetWeight without a pool to take the rest = %v", err)
	}
	if err := SetWeight(&c, "purple", 10, nil); !errors.As(err, &fe) || fe.Field != "target" {
		t.Errorf("SetWeight of an unknown pool = %v", err)
	}
}

func TestRolloutRollback(t *testing.T) {
	r := at("pool:green", []float64{50, 100}, 1, 0, t0, weights("blue", 100, "green", 0))
	c := withWeights(shop(), weights("blue", 0, "green", 100))
	if err := Rollback(r)(&c); err != nil || c.Weights["blue"] != 100 || c.Weights["green"] != 0 {
		t.Errorf("Rollback = %v, %v; want blue 100", c.Weights, err)
	}
	// A target that is gone is left alone: the abort still goes through.
	gone := shop()
	delete(gone.Pools, "green")
	delete(gone.Weights, "green")
	if err := Rollback(r)(&gone); err != nil || gone.Weights["blue"] != 100 {
		t.Errorf("Rollback of a vanished pool = %v, %v", gone.Weights, err)
	}
}

// TestRolloutHolds: an abort rolls back only a target where the rollout
// left it.
func TestRolloutHolds(t *testing.T) {
	r := at("pool:green", []float64{10, 50, 100}, 1, 0, t0, weights("blue", 100, "green", 0))
	before := r
	before.Step = -1
	noPool := shop()
	delete(noPool.Pools, "green")
	delete(noPool.Weights, "green")
	own := "rollout r-1 step 3/3: pool green 100%"
	tests := []struct {
		name string
		r    Rollout
		doc  Doc
		want bool
	}{
		{"at its step", r, Doc{Config: withWeights(shop(), weights("blue", 50, "green", 50))}, true},
		{"before the first step, where it started", before, Doc{Config: withWeights(shop(), weights("blue", 100, "green", 0))}, true},
		{"moved by the guard", r, Doc{Config: withWeights(shop(), weights("blue", 100, "green", 0)), ByGuard: true}, false},
		{"moved by hand", r, Doc{Config: withWeights(shop(), weights("blue", 70, "green", 30))}, false},
		{"its next step, record lost", r, Doc{Config: withWeights(shop(), weights("blue", 0, "green", 100)), Reason: own}, true},
		{"at the next step's value, by someone else", r, Doc{Config: withWeights(shop(), weights("blue", 0, "green", 100)), Reason: "by hand"}, false},
		{"pool gone", r, Doc{Config: noPool}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Holds(tt.r, tt.doc); got != tt.want {
				t.Errorf("Holds = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestRolloutBakeLeft(t *testing.T) {
	r := at("pool:green", []float64{10, 100}, 0, 0, t0, nil)
	tests := []struct {
		name string
		r    Rollout
		now  time.Time
		want time.Duration
	}{
		{"just applied", r, t0, time.Minute},
		{"half way", r, t0.Add(30 * time.Second), 30 * time.Second},
		{"baked", r, t0.Add(2 * time.Minute), 0},
		{"before the first step", at("pool:green", []float64{10}, -1, 0, t0, nil), t0, 0},
		{"paused", func() Rollout { p := r; p.State = Paused; return p }(), t0, 0},
	}
	for _, tt := range tests {
		if got := tt.r.BakeLeft(tt.now); got != tt.want {
			t.Errorf("%s: BakeLeft = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestRolloutReasons(t *testing.T) {
	r := at("pool:green", []float64{1, 10, 50, 100}, 0, 0, t0, nil)
	r.ID, r.Reason = "r-1a2b", "ship v2"
	if got, want := StepReason(r, 1), "rollout r-1a2b step 2/4: pool green 10% (ship v2)"; got != want {
		t.Errorf("StepReason = %q, want %q", got, want)
	}
	r.Reason = strings.Repeat("é", gateway.MaxReason)
	for _, s := range []string{StepReason(r, 3), AbortReason(r, strings.Repeat("x", 2*gateway.MaxReason))} {
		if n := utf8.RuneCountInString(s); n > gateway.MaxReason || !strings.HasPrefix(s, "rollout r-1a2b ") {
			t.Errorf("reason of %d characters %q..., want at most %d starting with the rollout", n, s[:30], gateway.MaxReason)
		}
	}
}
