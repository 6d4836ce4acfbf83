package configstore

import (
	"context"
	"errors"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/a8e2c47e/switchback/gateway"
)

func TestNewOptions(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		opt     Option
		wantErr bool
	}{
		{"prefix", WithPrefix("/sb/"), false},
		{"empty prefix", WithPrefix("/"), true},
		{"prefix with space", WithPrefix("/a b"), true},
		{"retention 2", WithRetention(2), false},
		{"retention 1", WithRetention(1), true},
		{"timeout", WithTimeout(time.Second), false},
		{"zero timeout", WithTimeout(0), true},
		{"nil clock", WithClock(nil), true},
		{"health interval", WithHealthInterval(0), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(sharedClient(t), tt.opt)
			if got := err != nil; got != tt.wantErr {
				t.Errorf("New(%s) error = %v, want error %v", tt.name, err, tt.wantErr)
			}
		})
	}
	if _, err := New(nil); err == nil {
		t.Error("New(nil) succeeded, want an error")
	}
}

func TestBootstrap(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	s := newStore(t, WithClock(func() time.Time { return at }))
	ctx := t.Context()

	first, created, err := s.Bootstrap(ctx, testConfig("shop"), Meta{Author: "caddy", Reason: "first start", Source: SourceBootstrap})
	if err != nil || !created {
		t.Fatalf("first Bootstrap = created %v, %v; want created", created, err)
	}
	wantMeta := Meta{Version: 1, Time: at, Author: "caddy", Reason: "first start", Source: SourceBootstrap, Summary: "created"}
	if first.Meta != wantMeta {
		t.Errorf("meta = %+v, want %+v", first.Meta, wantMeta)
	}
	if first.Config.Version != 1 {
		t.Errorf("config version = %d, want 1", first.Config.Version)
	}

	// A second instance starting with another document gets the stored one.
	other := testConfig("shop")
	other.Weights = map[string]float64{"blue": 50, "green": 50}
	second, created, err := s.Bootstrap(ctx, other, Meta{Author: "caddy-2", Source: SourceBootstrap})
	if err != nil || created {
		t.Fatalf("second Bootstrap = created %v, %v; want existing", created, err)
	}
	if second.Meta != first.Meta || !second.Config.Equal(first.Config) {
		t.Errorf("second Bootstrap = %+v, want the first document %+v", second, first)
	}
	got, err := s.Get(ctx, "shop")
	if err != nil || got.Meta != first.Meta || !got.Config.Equal(testConfig("shop")) {
		t.Errorf("Get = %+v, %v; want version 1 as bootstrapped", got, err)
	}
	hist, err := s.History(ctx, "shop", 0)
	if err != nil || len(hist) != 1 || hist[0] != first.Meta {
		t.Errorf("History = %+v, %v; want just version 1", hist, err)
	}
	names, err := s.List(ctx)
	if err != nil || !slices.Equal(names, []string{"shop"}) {
		t.Errorf("List = %v, %v; want [shop]", names, err)
	}
}

func TestBootstrapRejected(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	good := Meta{Author: "alice", Source: SourceCLI}
	tests := []struct {
		name      string
		cfg       func(*gateway.Config)
		meta      Meta
		wantField string
	}{
		{"bad name", func(c *gateway.Config) { c.Name = "no/slash" }, good, "name"},
		{"weights sum 110", func(c *gateway.Config) { c.Weights["green"] = 10 }, good, "weights"},
		{"one pool", func(c *gateway.Config) { delete(c.Pools, "green"); delete(c.Weights, "green") }, good, "pools"},
		{"no author", nil, Meta{Source: SourceAPI}, "author"},
		{"blank author", nil, Meta{Author: "  ", Source: SourceAPI}, "author"},
		{"unknown source", nil, Meta{Author: "alice", Source: "cron"}, "source"},
		{"no source", nil, Meta{Author: "alice"}, "source"},
		{"reason too long", nil, Meta{Author: "alice", Source: SourceAPI, Reason: strings.Repeat("é", gateway.MaxReason+1)}, "reason"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig("shop")
			if tt.cfg != nil {
				tt.cfg(&cfg)
			}
			_, _, err := s.Bootstrap(t.Context(), cfg, tt.meta)
			var fe *gateway.FieldError
			if !errors.As(err, &fe) || fe.Field != tt.wantField {
				t.Fatalf("Bootstrap error = %v, want a FieldError for %q", err, tt.wantField)
			}
		})
	}
	names, err := s.List(t.Context())
	if err != nil || len(names) != 0 {
		t.Errorf("List = %v, %v; want nothing written", names, err)
	}
	if _, _, err := s.Bootstrap(t.Context(), testConfig("shop"), Meta{Author: "a", Source: SourceAPI, Reason: strings.Repeat("é", gateway.MaxReason)}); err != nil {
		t.Errorf("Bootstrap with a reason of exactly %d characters: %v", gateway.MaxReason, err)
	}
}

func TestUpdate(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	s := newStore(t, WithClock(func() time.Time { return now }))
	ctx := t.Context()
	v1 := bootstrap(t, s, "shop")

	now = now.Add(time.Minute)
	res, err := s.Update(ctx, "shop", 0, Meta{Author: "bob", Reason: "cut over", Source: SourceCLI}, setWeights(100))
	if err != nil {
		t.Fatal(err)
	}
	v2 := res.Doc
	if !res.Wrote || res.Prev.Meta != v1.Meta {
		t.Errorf("Update = wrote %v replacing %+v, want it wrote, replacing version 1", res.Wrote, res.Prev.Meta)
	}
	want := Meta{Version: 2, Time: now, Author: "bob", Reason: "cut over", Source: SourceCLI,
		Summary: "weights.blue 100 → 0, weights.green 0 → 100"}
	if v2.Meta != want {
		t.Errorf("meta = %+v\nwant   %+v", v2.Meta, want)
	}
	if v2.Config.Version != 2 || v2.Config.Weights["green"] != 100 {
		t.Errorf("config = %+v, want version 2 with green at 100", v2.Config)
	}
	// The flip keeps blue as the rollback target for a day (the default
	// retain), as state beside the document.
	if until, ok := v2.RetainedUntil("blue", now); !ok || !until.Equal(now.Add(gateway.DefaultRetain)) {
		t.Errorf("blue retained until %v, %v; want %v", until, ok, now.Add(gateway.DefaultRetain))
	}

	v3 := wrote(t)(s.Update(ctx, "shop", 2, testMeta("new flag"), func(c *gateway.Config) error {
		c.Flags = map[string]gateway.Flag{"new_payment_flow": {Percent: 5}}
		return nil
	}))
	if got, want := v3.Meta.Summary, `flags.new_payment_flow added: {"percent":5}`; got != want {
		t.Errorf("summary = %q, want %q", got, want)
	}

	got, err := s.Get(ctx, "shop")
	if err != nil || got.Meta != v3.Meta || !got.Config.Equal(v3.Config) {
		t.Errorf("Get = %+v, %v; want version 3", got, err)
	}
	hist, err := s.History(ctx, "shop", 0)
	if err != nil {
		t.Fatal(err)
	}
	if want := []Meta{v3.Meta, v2.Meta, v1.Meta}; !slices.Equal(hist, want) {
		t.Errorf("History = %+v\nwant %+v", hist, want)
	}
	if hist, err := s.History(ctx, "shop", 2); err != nil || len(hist) != 2 || hist[0].Version != 3 {
		t.Errorf("History(limit 2) = %+v, %v; want versions 3 and 2", hist, err)
	}
	for _, want := range []Document{v1, v2, v3} {
		got, err := s.Version(ctx, "shop", want.Meta.Version)
		if err != nil || got.Meta != want.Meta || !got.Config.Equal(want.Config) || got.Config.Version != want.Meta.Version {
			t.Errorf("Version(%d) = %+v, %v; want %+v", want.Meta.Version, got, err, want)
		}
	}
}

func TestNotFound(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := t.Context()
	bootstrap(t, s, "shop")
	// part: what is missing is part of a deployment (a version), not the
	// deployment itself.
	tests := []struct {
		name string
		part bool
		call func() error
	}{
		{"Get unknown", false, func() error { _, err := s.Get(ctx, "nope"); return err }},
		{"Version unknown deployment", true, func() error { _, err := s.Version(ctx, "nope", 1); return err }},
		{"Version 0", true, func() error { _, err := s.Version(ctx, "shop", 0); return err }},
		{"Version 2", true, func() error { _, err := s.Version(ctx, "shop", 2); return err }},
		{"History unknown", false, func() error { _, err := s.History(ctx, "nope", 0); return err }},
		{"Update unknown", false, func() error { _, err := s.Update(ctx, "nope", 0, testMeta(""), setWeights(1)); return err }},
		{"Restore unknown version", true, func() error { _, err := s.Restore(ctx, "shop", 7, 0, testMeta("")); return err }},
		{"Rollback at version 1", true, func() error { _, err := s.Rollback(ctx, "shop", 0, testMeta("")); return err }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			var nf *NotFoundError
			if !errors.Is(err, ErrNotFound) || !errors.As(err, &nf) || (nf.What != "") != tt.part {
				t.Errorf("error = %v, want a *NotFoundError (of part of the deployment: %v)", err, tt.part)
			}
		})
	}
	if v := currentVersion(t, s, "shop"); v != 1 {
		t.Errorf("version = %d after failed calls, want 1", v)
	}
}

// currentVersion is the deployment's current version.
func currentVersion(t testing.TB, s *Store, name string) uint64 {
	t.Helper()
	d, err := s.Get(t.Context(), name)
	if err != nil {
		t.Fatal(err)
	}
	return d.Meta.Version
}

func TestUpdateIfMatch(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := t.Context()
	bootstrap(t, s, "shop")
	if _, err := s.Update(ctx, "shop", 1, testMeta("first"), setWeights(10)); err != nil {
		t.Fatal(err)
	}
	// A client that read version 1 edits what it saw.
	_, err := s.Update(ctx, "shop", 1, testMeta("stale"), setWeights(20))
	var ce *ConflictError
	if !errors.Is(err, ErrConflict) || !errors.As(err, &ce) || ce.Deployment != "shop" || ce.Want != 1 || ce.Current != 2 {
		t.Fatalf("stale If-Match: error = %v, want a *ConflictError wanting 1 at 2", err)
	}
	_, err = s.Restore(ctx, "shop", 1, 1, testMeta("stale"))
	if !errors.Is(err, ErrConflict) {
		t.Fatalf("stale If-Match restore: error = %v, want ErrConflict", err)
	}
	cur, err := s.Get(ctx, "shop")
	if err != nil || cur.Meta.Version != 2 || cur.Config.Weights["green"] != 10 {
		t.Errorf("current = %+v, %v; want version 2 with green at 10", cur, err)
	}
	if hist, _ := s.History(ctx, "shop", 0); len(hist) != 2 {
		t.Errorf("history has %d versions, want 2", len(hist))
	}
}

func TestUpdateRejected(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := t.Context()
	bootstrap(t, s, "shop")
	errBoom := errors.New("boom")
	tests := []struct {
		name      string
		meta      Meta
		mutate    func(*gateway.Config) error
		wantField string // a FieldError for this field
		wantErr   error  // or this error
	}{
		{"weights sum 110", testMeta(""), func(c *gateway.Config) error { c.Weights["green"] = 10; return nil }, "weights", nil},
		{"empty pool", testMeta(""), func(c *gateway.Config) error { c.Pools["green"] = gateway.Pool{}; return nil }, "pools.green.upstreams", nil},
		{"rename", testMeta(""), func(c *gateway.Config) error { c.Name = "other"; return nil }, "name", nil},
		{"flag percent", testMeta(""), func(c *gateway.Config) error {
			c.Flags = map[string]gateway.Flag{"x": {Percent: 0.001}}
			return nil
		}, "flags.x.percent", nil},
		{"no author", Meta{Source: SourceAPI}, setWeights(5), "author", nil},
		{"mutate fails", testMeta(""), func(*gateway.Config) error { return errBoom }, "", errBoom},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := s.Update(ctx, "shop", 0, tt.meta, tt.mutate)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("error = %v, want %v", err, tt.wantErr)
				}
				return
			}
			var fe *gateway.FieldError
			if !errors.As(err, &fe) || fe.Field != tt.wantField {
				t.Fatalf("error = %v, want a FieldError for %q", err, tt.wantField)
			}
		})
	}
	if v := currentVersion(t, s, "shop"); v != 1 {
		t.Errorf("version = %d after rejected updates, want 1", v)
	}
	if _, err := s.Get(ctx, "bad/name"); !errors.As(err, new(*gateway.FieldError)) {
		t.Errorf("Get(bad/name) error = %v, want a FieldError", err)
	}
}

func TestUpdateNoChange(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	v1 := bootstrap(t, s, "shop")
	got, err := s.Update(t.Context(), "shop", 1, testMeta("same again"), setWeights(0))
	if err != nil {
		t.Fatal(err)
	}
	if got.Wrote || got.Doc.Meta != v1.Meta || got.Prev.Meta != v1.Meta {
		t.Errorf("Update with no change = wrote %v, %+v replacing %+v; want nothing written, version 1 %+v", got.Wrote, got.Doc.Meta, got.Prev.Meta, v1.Meta)
	}
	if hist, _ := s.History(t.Context(), "shop", 0); len(hist) != 1 {
		t.Errorf("history has %d versions, want 1", len(hist))
	}
}

// TestConcurrentIfMatch: writers that each read the current version and
// update with If-Match never lose an update; every success gets its own
// version. A writer that loses reads again, as an API client would, a few
// times, so that successes interleave.
//
// Not parallel: it loads etcd on purpose, and the writers' deadlines should
// not depend on what other tests do meanwhile.
func TestConcurrentIfMatch(t *testing.T) {
	s := newStore(t, WithTimeout(time.Minute)) // no timeouts on a loaded machine
	ctx := t.Context()
	bootstrap(t, s, "shop")
	const writers, tries = 100, 3
	var (
		mu        sync.Mutex
		versions  []uint64
		conflicts int
	)
	var wg sync.WaitGroup
	for range writers {
		wg.Go(func() {
			for range tries {
				cur, err := s.Get(ctx, "shop")
				if err != nil {
					t.Error(err)
					return
				}
				doc, err := s.Update(ctx, "shop", cur.Meta.Version, testMeta("race"), addPercent("counter", 1))
				mu.Lock()
				switch {
				case errors.Is(err, ErrConflict):
					conflicts++
				case err != nil:
					t.Errorf("Update: %v, want success or ErrConflict", err)
				default:
					versions = append(versions, doc.Doc.Meta.Version)
				}
				mu.Unlock()
				if !errors.Is(err, ErrConflict) {
					return
				}
			}
		})
	}
	wg.Wait()
	t.Logf("%d successes, %d conflicts", len(versions), conflicts)
	if len(versions) == 0 {
		t.Fatal("no writer succeeded")
	}
	slices.Sort(versions)
	if n := len(slices.Compact(slices.Clone(versions))); n != len(versions) {
		t.Errorf("%d successes share %d versions: %v", len(versions), n, versions)
	}
	checkCounter(t, s, len(versions))
}

// TestConcurrentRetry: writers without If-Match retry lost races until
// they land, within their deadline: every increment lands, none is lost.
// Not parallel, like TestConcurrentIfMatch.
func TestConcurrentRetry(t *testing.T) {
	s := newStore(t, WithTimeout(time.Minute))
	ctx := t.Context()
	bootstrap(t, s, "shop")
	const writers = 32
	var wg sync.WaitGroup
	for range writers {
		wg.Go(func() {
			if res, err := s.Update(ctx, "shop", 0, testMeta("race"), addPercent("counter", 1)); err != nil || !res.Wrote {
				t.Errorf("Update = wrote %v, %v; want it landed", res.Wrote, err)
			}
		})
	}
	wg.Wait()
	checkCounter(t, s, writers)
}

// TestRetryUntilDeadline: a write without If-Match that cannot land before
// its deadline is ErrUnavailable (retry later), not ErrConflict, which is
// for a stale If-Match.
func TestRetryUntilDeadline(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	bootstrap(t, s, "shop")
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	// Every attempt loses: another writer lands first each time.
	n := 0
	_, err := s.Update(ctx, "shop", 0, testMeta("loser"), func(c *gateway.Config) error {
		n++
		if _, err := s.Update(t.Context(), "shop", 0, testMeta("winner"), addPercent("other", 1)); err != nil {
			return err
		}
		return addPercent("mine", 1)(c)
	})
	if !errors.Is(err, ErrUnavailable) || errors.Is(err, ErrConflict) {
		t.Fatalf("Update losing every race = %v, want ErrUnavailable", err)
	}
	if n < 2 {
		t.Errorf("tried %d times, want retries until the deadline", n)
	}
	if cur, _ := s.Get(t.Context(), "shop"); cur.Config.Flags["mine"].Percent != 0 {
		t.Errorf("the losing write landed: %+v", cur.Config.Flags)
	}
}

// addPercent raises flag name by bp hundredths of a percent.
func addPercent(name string, bp int) func(*gateway.Config) error {
	return func(c *gateway.Config) error {
		if c.Flags == nil {
			c.Flags = make(map[string]gateway.Flag)
		}
		f := c.Flags[name]
		f.Percent = float64(int(math.Round(f.Percent*100))+bp) / 100
		c.Flags[name] = f
		return nil
	}
}

// checkCounter checks that n increments of 0.01 landed, one version each,
// all of them in history.
func checkCounter(t *testing.T, s *Store, n int) {
	t.Helper()
	cur, err := s.Get(t.Context(), "shop")
	if err != nil {
		t.Fatal(err)
	}
	if got := int(math.Round(cur.Config.Flags["counter"].Percent * 100)); got != n {
		t.Errorf("counter = %d hundredths, want %d (one per success)", got, n)
	}
	if cur.Meta.Version != uint64(1+n) {
		t.Errorf("version = %d, want %d (1 + successes)", cur.Meta.Version, 1+n)
	}
	hist, err := s.History(t.Context(), "shop", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(hist) != 1+n {
		t.Errorf("history has %d versions, want %d", len(hist), 1+n)
	}
	for i, m := range hist {
		if want := uint64(1 + n - i); m.Version != want {
			t.Fatalf("history[%d] is version %d, want %d", i, m.Version, want)
		}
	}
}

func TestRestoreRollback(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := t.Context()
	v1 := bootstrap(t, s, "shop")
	v2 := wrote(t)(s.Update(ctx, "shop", 0, testMeta("cut over"), setWeights(100)))
	v3 := wrote(t)(s.Update(ctx, "shop", 0, testMeta("flag"), addPercent("x", 500)))

	v4 := wrote(t)(s.Rollback(ctx, "shop", 3, Meta{Author: "guard", Reason: "error rate 12%", Source: SourceGuard}))
	if v4.Meta.Version != 4 || v4.Meta.RestoredFrom != 2 || v4.Meta.Summary != "restored version 2" || v4.Meta.Source != SourceGuard {
		t.Errorf("rollback meta = %+v, want version 4 restored from 2", v4.Meta)
	}
	if !v4.Config.Equal(v2.Config) || v4.Config.Version != 4 {
		t.Errorf("rollback config = %+v, want version 2's as version 4", v4.Config)
	}

	v5 := wrote(t)(s.Restore(ctx, "shop", 1, 0, testMeta("back to blue")))
	// A restore brings back exactly version 1's content; it undoes a
	// change, so green, which it takes off traffic, is no rollback target.
	if v5.Meta.Version != 5 || v5.Meta.RestoredFrom != 1 || !v5.Config.Equal(v1.Config) {
		t.Errorf("restore = %+v, want version 1's config as version 5", v5)
	}
	if d := Diff(v1.Config, v5.Config); len(d) != 0 {
		t.Errorf("diff between version 1 and its restore = %v, want none", d)
	}
	if v5.Retained != nil {
		t.Errorf("restore away from green: retained %v, want none", v5.Retained)
	}

	// Restoring what is current changes nothing.
	same, err := s.Restore(ctx, "shop", 1, 0, testMeta("again"))
	if err != nil || same.Wrote || same.Doc.Meta != v5.Meta {
		t.Errorf("restore of the current config = wrote %v, %+v, %v; want version 5 unchanged", same.Wrote, same.Doc.Meta, err)
	}

	// History is never rewritten.
	for _, want := range []Document{v1, v2, v3, v4, v5} {
		got, err := s.Version(ctx, "shop", want.Meta.Version)
		if err != nil || got.Meta != want.Meta || !got.Config.Equal(want.Config) {
			t.Errorf("Version(%d) = %+v, %v; want %+v", want.Meta.Version, got, err, want)
		}
	}
	if hist, _ := s.History(ctx, "shop", 0); len(hist) != 5 {
		t.Errorf("history has %d versions, want 5", len(hist))
	}
}

func TestRetention(t *testing.T) {
	t.Parallel()
	s := newStore(t, WithRetention(5))
	ctx := t.Context()
	bootstrap(t, s, "shop")
	for i := 2; i <= 12; i++ {
		if _, err := s.Update(ctx, "shop", 0, testMeta("step"), setWeights(float64(i))); err != nil {
			t.Fatal(err)
		}
	}
	hist, err := s.History(ctx, "shop", 0)
	if err != nil {
		t.Fatal(err)
	}
	var got []uint64
	for _, m := range hist {
		got = append(got, m.Version)
	}
	if want := []uint64{12, 11, 10, 9, 8}; !slices.Equal(got, want) {
		t.Errorf("history versions = %v, want %v", got, want)
	}
	if _, err := s.Version(ctx, "shop", 7); !errors.Is(err, ErrNotFound) {
		t.Errorf("Version(7) error = %v, want ErrNotFound (dropped by retention)", err)
	}
	if _, err := s.Restore(ctx, "shop", 7, 0, testMeta("")); !errors.Is(err, ErrNotFound) {
		t.Errorf("Restore(7) error = %v, want ErrNotFound", err)
	}
	rb, err := s.Rollback(ctx, "shop", 0, testMeta("undo"))
	if err != nil || rb.Doc.Meta.RestoredFrom != 11 || rb.Doc.Config.Weights["green"] != 11 || rb.Prev.Meta.Version != 12 {
		t.Errorf("Rollback = %+v, %v; want version 11 restored over 12", rb, err)
	}
}

func TestList(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	// Names chosen so that key order ("a.b/" < "a/" < "a0/") differs from
	// name order.
	for _, name := range []string{"a0", "a", "a.b", "z", "a_"} {
		bootstrap(t, s, name)
	}
	if _, err := s.Update(t.Context(), "a", 0, testMeta(""), setWeights(1)); err != nil {
		t.Fatal(err)
	}
	names, err := s.List(t.Context())
	if want := []string{"a", "a.b", "a0", "a_", "z"}; err != nil || !slices.Equal(names, want) {
		t.Errorf("List = %v, %v; want %v", names, err, want)
	}
}

// TestFallbackRetainsNothing: a flip keeps the pool it empties as the
// rollback target; a fallback (guard, rollout abort) empties a failing pool,
// which must not become one.
func TestFallbackRetainsNothing(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := t.Context()
	bootstrap(t, s, "shop") // blue 100, green 0
	flip := wrote(t)(s.Update(ctx, "shop", 0, testMeta("ship green"), setWeights(100)))
	if _, ok := flip.Retained["blue"]; !ok {
		t.Fatalf("after a flip: retained %v, want blue", flip.Retained)
	}
	m := testMeta("green failing")
	m.Fallback = true
	back := wrote(t)(s.Update(ctx, "shop", 0, m, setWeights(0)))
	if back.Retained != nil || !back.Meta.Fallback {
		t.Errorf("after a fallback: retained %v, meta fallback %v; want none retained, the version marked", back.Retained, back.Meta.Fallback)
	}
}
