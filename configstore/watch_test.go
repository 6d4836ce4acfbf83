package configstore

import (
	"context"
	"errors"
	"maps"
	"net/url"
	"slices"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/a8e2c47e/switchback/gateway"
	"github.com/a8e2c47e/switchback/internal/testharness"
)

// TestWatch: two watchers get the current documents, then every version
// in order, including those of a deployment created after they started.
func TestWatch(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := t.Context()
	bootstrap(t, s, "shop")
	if _, err := s.Update(ctx, "shop", 0, testMeta(""), setWeights(10)); err != nil {
		t.Fatal(err)
	}
	bootstrap(t, s, "api")

	watchers := []*recorder{watch(t, s), watch(t, s)}
	for _, r := range watchers {
		testharness.WaitFor(t, "current documents", func() bool { return r.last("shop") == 2 && r.last("api") == 1 })
	}
	for g := 20.0; g <= 50; g += 10 { // shop versions 3..6
		if _, err := s.Update(ctx, "shop", 0, testMeta(""), setWeights(g)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Rollback(ctx, "api", 0, testMeta("")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Rollback at version 1: %v", err)
	}
	if _, err := s.Update(ctx, "api", 0, testMeta(""), setWeights(1)); err != nil {
		t.Fatal(err)
	}
	bootstrap(t, s, "late")

	want := map[string][]uint64{"shop": {2, 3, 4, 5, 6}, "api": {1, 2}, "late": {1}}
	for i, r := range watchers {
		testharness.WaitFor(t, "new versions", func() bool { return r.last("shop") == 6 && r.last("api") == 2 && r.last("late") == 1 })
		for name, versions := range want {
			if got := r.seen(name); !slices.Equal(got, versions) {
				t.Errorf("watcher %d: %s versions = %v, want %v", i, name, got, versions)
			}
		}
		r.mu.Lock()
		if d := r.docs["shop"]; d.Config.Weights["green"] != 50 || d.Config.Version != 6 {
			t.Errorf("watcher %d: last shop document = %+v, want version 6 with green at 50", i, d.Config)
		}
		if !slices.Equal(r.healthy, []bool{true}) {
			t.Errorf("watcher %d: health reports %v, want [true]", i, r.healthy)
		}
		r.mu.Unlock()
	}
}

// TestCompaction: history survives compaction, and a watcher whose
// revision was compacted while it was cut off lists again and gets the
// latest version.
func TestCompaction(t *testing.T) {
	t.Parallel()
	e, client := startEtcd(t, "", "127.0.0.1:0")
	s, err := New(client)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	bootstrap(t, s, "shop")

	// The watcher reaches etcd through a proxy the test can cut.
	p := testharness.StartRelay(t, e.Endpoints()[0])
	pc, err := localClient([]string{p.Endpoint()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	ws, err := New(pc, WithTimeout(500*time.Millisecond), WithHealthInterval(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	r := watch(t, ws)
	testharness.WaitFor(t, "version 1", func() bool { return r.last("shop") == 1 })

	p.Pause()
	testharness.WaitFor(t, "unhealthy", func() bool { h, ok := r.isHealthy(); return ok && !h })
	for g := 10.0; g <= 50; g += 10 { // versions 2..6
		if _, err := s.Update(ctx, "shop", 0, testMeta(""), setWeights(g)); err != nil {
			t.Fatal(err)
		}
	}
	compact(t, client)
	p.Resume()

	testharness.WaitFor(t, "version 6", func() bool { return r.last("shop") == 6 })
	// Versions 2..5 are gone from the watch stream: the watcher listed again.
	if got, want := r.seen("shop"), []uint64{1, 6}; !slices.Equal(got, want) {
		t.Errorf("watcher saw versions %v, want %v", got, want)
	}
	if h, _ := r.isHealthy(); !h {
		t.Error("watcher still unhealthy after the proxy came back")
	}

	hist, err := s.History(ctx, "shop", 0)
	if err != nil || len(hist) != 6 {
		t.Fatalf("History after compaction = %d versions, %v; want 6", len(hist), err)
	}
	for v := uint64(1); v <= 6; v++ {
		d, err := s.Version(ctx, "shop", v)
		if err != nil || d.Config.Weights["green"] != float64(v-1)*10 {
			t.Errorf("Version(%d) after compaction = %+v, %v", v, d.Config.Weights, err)
		}
	}
	if _, err := s.Rollback(ctx, "shop", 6, testMeta("")); err != nil {
		t.Errorf("Rollback after compaction: %v", err)
	}
}

// compact compacts etcd at its current revision.
func compact(t testing.TB, c *clientv3.Client) {
	t.Helper()
	resp, err := c.Get(t.Context(), "compact-probe")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Compact(t.Context(), resp.Header.Revision, clientv3.WithCompactPhysical()); err != nil {
		t.Fatal(err)
	}
}

// TestEtcdRestart: while etcd is stopped every operation fails with
// ErrUnavailable and the watcher reports it; once etcd runs again on the
// same data and port, the watcher recovers and gets new versions.
func TestEtcdRestart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	e, err := StartEmbedded(dir, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	client, err := e.Client()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	s, err := New(client, WithTimeout(500*time.Millisecond), WithHealthInterval(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	bootstrap(t, s, "shop")
	if _, err := s.Update(ctx, "shop", 0, testMeta(""), setWeights(10)); err != nil {
		t.Fatal(err)
	}
	// Deferred calls run before cleanups: the watch and the lease keeper
	// stop before etcd, whose stop waits for open streams.
	defer s.Close()
	r, stop := watchUntil(t, s)
	defer stop()
	testharness.WaitFor(t, "version 2", func() bool { return r.last("shop") == 2 })

	e.Close()
	testharness.WaitFor(t, "unhealthy", func() bool { h, ok := r.isHealthy(); return ok && !h })
	r.mu.Lock()
	if !errors.Is(r.lastErr, ErrUnavailable) {
		t.Errorf("health error = %v, want ErrUnavailable", r.lastErr)
	}
	r.mu.Unlock()

	t.Run("down", func(t *testing.T) {
		tests := []struct {
			name string
			call func(context.Context) error
		}{
			{"List", func(ctx context.Context) error { _, err := s.List(ctx); return err }},
			{"Get", func(ctx context.Context) error { _, err := s.Get(ctx, "shop"); return err }},
			{"Version", func(ctx context.Context) error { _, err := s.Version(ctx, "shop", 1); return err }},
			{"History", func(ctx context.Context) error { _, err := s.History(ctx, "shop", 0); return err }},
			{"Bootstrap", func(ctx context.Context) error {
				_, _, err := s.Bootstrap(ctx, testConfig("other"), testMeta(""))
				return err
			}},
			{"Update", func(ctx context.Context) error {
				_, err := s.Update(ctx, "shop", 0, testMeta(""), setWeights(20))
				return err
			}},
			{"Restore", func(ctx context.Context) error { _, err := s.Restore(ctx, "shop", 1, 0, testMeta("")); return err }},
			{"Rollback", func(ctx context.Context) error { _, err := s.Rollback(ctx, "shop", 0, testMeta("")); return err }},
			{"ReportApplied", func(ctx context.Context) error { return s.ReportApplied(ctx, "gw-1:9180", "shop", 3) }},
			{"Applied", func(ctx context.Context) error { _, err := s.Applied(ctx, "shop"); return err }},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				t.Parallel()
				if err := tt.call(t.Context()); !errors.Is(err, ErrUnavailable) {
					t.Errorf("error = %v, want ErrUnavailable", err)
				}
			})
		}
	})

	u, err := url.Parse(e.Endpoints()[0])
	if err != nil {
		t.Fatal(err)
	}
	e2, err := StartEmbedded(dir, u.Host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e2.Close() })
	testharness.WaitFor(t, "healthy again", func() bool { h, _ := r.isHealthy(); return h })

	var v3 Document
	testharness.WaitFor(t, "a write after the restart", func() bool {
		var res Result
		res, err = s.Update(ctx, "shop", 2, testMeta("after restart"), setWeights(30))
		v3 = res.Doc
		return err == nil
	})
	if v3.Meta.Version != 3 {
		t.Fatalf("first version after restart = %d, want 3", v3.Meta.Version)
	}
	testharness.WaitFor(t, "version 3 at the watcher", func() bool { return r.last("shop") == 3 })
	if got, want := r.seen("shop"), []uint64{2, 3}; !slices.Equal(got, want) {
		t.Errorf("watcher saw %v, want %v", got, want)
	}
	testharness.WaitFor(t, "a report after the restart", func() bool {
		return s.ReportApplied(ctx, "gw-1:9180", "shop", 3) == nil
	})
	if got, err := s.Applied(ctx, "shop"); err != nil || got["gw-1:9180"] != 3 {
		t.Errorf("Applied after restart = %v, %v; want gw-1:9180 at 3", got, err)
	}
	r.mu.Lock()
	if got, want := r.healthy, []bool{true, false, true}; !slices.Equal(got, want) {
		t.Errorf("health reports = %v, want %v", got, want)
	}
	r.mu.Unlock()
}

func TestReportApplied(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := t.Context()
	reports := []struct {
		instance, name string
		version        uint64
	}{
		{"gw-1:9180", "shop", 3},
		{"gw-2:9180", "shop", 4},
		{"gw-1:9180", "api", 1},
		{"gw-1:9180", "shop", 5}, // newer report replaces the older
	}
	for _, rep := range reports {
		if err := s.ReportApplied(ctx, rep.instance, rep.name, rep.version); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.Applied(ctx, "shop")
	if want := map[string]uint64{"gw-1:9180": 5, "gw-2:9180": 4}; err != nil || !maps.Equal(got, want) {
		t.Errorf("Applied(shop) = %v, %v; want %v", got, err, want)
	}
	if got, err := s.Applied(ctx, "nope"); err != nil || len(got) != 0 {
		t.Errorf("Applied(nope) = %v, %v; want none", got, err)
	}

	var fe *gateway.FieldError
	for _, bad := range []string{"", "a/b", "has space"} {
		if err := s.ReportApplied(ctx, bad, "shop", 1); !errors.As(err, &fe) || fe.Field != "instance" {
			t.Errorf("ReportApplied(instance %q) = %v, want a FieldError for instance", bad, err)
		}
	}

	// Close revokes the lease: the reports go with it.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Applied(ctx, "shop"); err != nil || len(got) != 0 {
		t.Errorf("Applied after Close = %v, %v; want none", got, err)
	}
	if got, err := s.Applied(ctx, "api"); err != nil || len(got) != 0 {
		t.Errorf("Applied(api) after Close = %v, %v; want none", got, err)
	}
	if err := s.ReportApplied(ctx, "gw-1:9180", "shop", 6); err == nil {
		t.Error("ReportApplied after Close succeeded")
	}
}

// TestWatchStartsUnreachable: a Watch started while etcd cannot be reached
// reports it, and delivers the documents once etcd can be reached.
func TestWatchStartsUnreachable(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	bootstrap(t, s, "shop")
	p := testharness.StartRelay(t, shared.etcd.Endpoints()[0])
	p.Pause()
	pc, err := localClient([]string{p.Endpoint()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	ws, err := New(pc, WithPrefix(s.prefix), WithTimeout(200*time.Millisecond), WithHealthInterval(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	r := watch(t, ws)
	testharness.WaitFor(t, "unhealthy", func() bool { _, ok := r.isHealthy(); return ok })
	if _, err := s.Update(t.Context(), "shop", 0, testMeta(""), setWeights(10)); err != nil {
		t.Fatal(err)
	}
	p.Resume()
	testharness.WaitFor(t, "version 2", func() bool { return r.last("shop") == 2 })
	r.mu.Lock()
	defer r.mu.Unlock()
	if want := []bool{false, true}; !slices.Equal(r.healthy, want) {
		t.Errorf("health reports = %v, want %v", r.healthy, want)
	}
	if !errors.Is(r.lastErr, ErrUnavailable) {
		t.Errorf("health error = %v, want ErrUnavailable", r.lastErr)
	}
}
