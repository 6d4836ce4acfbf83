package admin

import (
	"errors"

	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/a8e2c47e/switchback/cmdline"
	"github.com/a8e2c47e/switchback/configstore"
	"github.com/a8e2c47e/switchback/gateway"
	"github.com/a8e2c47e/switchback/guard"
	"github.com/a8e2c47e/switchback/internal/testharness/etcdtest"
	"github.com/a8e2c47e/switchback/triage"
)

var t0 = time.Date(2026, 11, 29, 17, 0, 0, 0, time.UTC)

// setClock is the store's clock, set before each write.
type setClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *setClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *setClock) set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// fourVersions serves "shop" with v1 (blue 100, flag 10%) at t0, v2
// (blue 90 green 10) at t0+1m, v3 (flag 60%) at t0+2m and v4 (50/50) at
// t0+3m.
func fourVersions(t *testing.T, measured func(string) (triage.Measured, bool)) *harness {
	t.Helper()
	clock := &setClock{t: t0}
	h := &harness{t: t, store: etcdtest.NewStore(t, configstore.WithClock(clock.now)), audit: &auditLog{}, reg: prometheus.NewRegistry()}
	bootstrap(t, h.store, shopConfig())
	edits := []func(*gateway.Config) error{
		func(c *gateway.Config) error { c.Weights = map[string]float64{"blue": 90, "green": 10}; return nil },
		func(c *gateway.Config) error { c.Flags["new-cart"] = gateway.Flag{Percent: 60}; return nil },
		func(c *gateway.Config) error { c.Weights = map[string]float64{"blue": 50, "green": 50}; return nil },
	}
	for i, e := range edits {
		clock.set(t0.Add(time.Duration(i+1) * time.Minute))
		if _, err := h.store.Update(t.Context(), "shop", 0, configstore.Meta{Author: "alice", Source: configstore.SourceCLI}, e); err != nil {
			t.Fatal(err)
		}
	}
	clock.set(t0.Add(10 * time.Minute))
	s, err := New(Options{Store: h.store, Instance: "host-a", Registry: h.reg, Audit: h.audit.add,
		Now: func() time.Time { return t0.Add(10 * time.Minute) }, Measured: measured})
	if err != nil {
		t.Fatal(err)
	}
	h.server = s
	h.srv = httptest.NewServer(s)
	t.Cleanup(h.srv.Close)
	return h
}

// TestRestoreBefore: one write back to the last version before a time or a
// version; bad input names its field and writes nothing.
func TestRestoreBefore(t *testing.T) {
	tests := []struct {
		name      string
		body      string
		status    int
		restored  uint64 // the version written again
		wantField string
		wantMsg   string
	}{
		{name: "between versions", body: `{"before": "2026-11-29T17:02:30Z", "reason": "incident"}`, status: 200, restored: 3},
		{name: "at a version's time, which is not before it", body: `{"before": "2026-11-29T17:02:00Z"}`, status: 200, restored: 2},
		{name: "fractional seconds and an offset", body: `{"before": "2026-11-29T18:01:00.5+01:00"}`, status: 200, restored: 2},
		{name: "before a version", body: `{"before_version": 3}`, status: 200, restored: 2},
		{name: "before the first version", body: `{"before": "2026-11-29T16:59:00Z"}`, status: 400, wantField: "before",
			wantMsg: `before "2026-11-29T16:59:00Z": no version is older; want a time after 2026-11-29T17:00:00Z, when version 1`},
		{name: "unparsable time", body: `{"before": "yesterday"}`, status: 400, wantField: "before",
			wantMsg: `before "yesterday": want an RFC 3339 time, like 2026-11-29T17:21:00Z`},
		{name: "both forms", body: `{"before": "2026-11-29T17:02:30Z", "before_version": 3}`, status: 400, wantField: "before",
			wantMsg: "give exactly one of version, before and before_version"},
		{name: "version and before", body: `{"version": 2, "before_version": 3}`, status: 400, wantField: "before"},
		{name: "nothing before version 1", body: `{"before_version": 1}`, status: 400, wantField: "before_version",
			wantMsg: "before_version 1: want a version after the first"},
		{name: "no version at all", body: `{"reason": "x"}`, status: 400, wantField: "version"},
		{name: "before an unknown version", body: `{"before_version": 99}`, status: 404, wantField: "before_version"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := fourVersions(t, nil)
			r := h.do(http.MethodPost, "/api/v1/deployments/shop/restore", tt.body)
			if r.status != tt.status {
				t.Fatalf("status %d, want %d: %s", r.status, tt.status, r.body)
			}
			cur := h.current("shop")
			if tt.status != 200 {
				e := r.errorBody(t)
				if e.Field != tt.wantField || !strings.Contains(e.Error, tt.wantMsg) {
					t.Errorf("error %q field %q, want field %q and %q", e.Error, e.Field, tt.wantField, tt.wantMsg)
				}
				if cur.Meta.Version != 4 {
					t.Errorf("a refused restore wrote version %d", cur.Meta.Version)
				}
				return
			}
			src, err := h.store.Version(t.Context(), "shop", tt.restored)
			if err != nil {
				t.Fatal(err)
			}
			src.Config.Version = cur.Config.Version
			if cur.Meta.Version != 5 || cur.Meta.RestoredFrom != tt.restored || !cur.Config.Equal(src.Config) {
				t.Errorf("wrote v%d restored from v%d, want v5 equal to v%d", cur.Meta.Version, cur.Meta.RestoredFrom, tt.restored)
			}
		})
	}
}

// TestCLIRestoreBefore: the command line's forms, in either order, and its
// refusals of bad input before anything is sent.
func TestCLIRestoreBefore(t *testing.T) {
	tests := []struct {
		args     []string
		code     int
		restored uint64
		stderr   string
	}{
		{args: []string{"restore", "shop", "--before", "2026-11-29T17:02:30Z", "--reason", "incident"}, restored: 3},
		{args: []string{"restore", "--before-version", "3", "shop"}, restored: 2},
		{args: []string{"restore", "shop", "--before", "2026-11-29T17:02:30Z", "--before-version", "3"}, code: 2, stderr: "give one of them"},
		{args: []string{"restore", "shop", "--before", "17:02"}, code: 2, stderr: `--before "17:02": want an RFC 3339 time`},
		{args: []string{"restore", "shop", "2", "--before-version", "3"}, code: 2, stderr: "and no version"},
		{args: []string{"restore", "shop", "--before", "2026-11-29T16:00:00Z"}, code: 1, stderr: "no version is older"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			h := fourVersions(t, nil)
			code, _, stderr := runCLI(t, map[string]string{"SWITCHBACK_ADMIN": h.srv.URL}, tt.args...)
			if code != tt.code || !strings.Contains(stderr, tt.stderr) {
				t.Fatalf("exit %d, stderr %q; want %d and %q", code, stderr, tt.code, tt.stderr)
			}
			cur := h.current("shop")
			want := uint64(4)
			if tt.code == 0 {
				want = 5
			}
			if cur.Meta.Version != want || cur.Meta.RestoredFrom != tt.restored {
				t.Errorf("at v%d restored from v%d, want v%d restored from v%d", cur.Meta.Version, cur.Meta.RestoredFrom, want, tt.restored)
			}
		})
	}
}

// TestTriageAPI: the endpoint reads the changes and what the instance
// measured, and the CLI prints the suspects' commands.
func TestTriageAPI(t *testing.T) {
	st := func(req, errs uint64, p95 time.Duration) guard.Stats {
		return guard.Stats{Requests: req, Errors: errs, P95: p95}
	}
	measured := func(name string) (triage.Measured, bool) {
		if name != "shop" {
			return triage.Measured{}, false
		}
		// Green fails since v4 gave it half the traffic.
		return triage.Measured{
			Instance: "host-a",
			Now: guard.Window{
				Pools: map[string]guard.Stats{"blue": st(100, 0, 5*time.Millisecond), "green": st(100, 80, 5*time.Millisecond)},
				Flags: map[string]guard.Cohorts[guard.Stats]{"new-cart": {On: st(120, 48, 5*time.Millisecond), Off: st(80, 32, 5*time.Millisecond)}},
			},
			Marks: []triage.Mark{{Version: 4, Applied: t0.Add(3 * time.Minute)}},
		}, true
	}
	h := fourVersions(t, measured)
	c, err := NewClient(h.srv.URL, "")
	if err != nil {
		t.Fatal(err)
	}
	r, err := c.Triage(t.Context(), "shop")
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Suspects) != 1 || r.Suspects[0].Subject != "pool:green" || r.Suspects[0].Change == nil || r.Suspects[0].Change.Version != 4 {
		t.Fatalf("suspects %+v, want pool:green raised by v4", r.Suspects)
	}
	if len(r.Changes) != 4 || r.Scope != "instance host-a" || r.Guard.Configured {
		t.Errorf("changes %d, scope %q, guard %+v", len(r.Changes), r.Scope, r.Guard)
	}
	code, out, _ := runCLI(t, map[string]string{"SWITCHBACK_ADMIN": h.srv.URL}, "triage", "shop")
	for _, want := range []string{
		"1 suspect: run its command",
		"1. pool:green",
		"$ switchback weights shop blue=100 green=0 --reason 'triage: pool green failing'",
		"guard: no guard configured",
		"figures of instance host-a",
		"this gateway instance's figures only",
		"changes in the last hour:",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("triage output lacks %q", want)
		}
	}
	if code != cmdline.ExitOK {
		t.Errorf("exit %d", code)
	}
	// Without a name, every deployment.
	if code, out, _ := runCLI(t, map[string]string{"SWITCHBACK_ADMIN": h.srv.URL}, "triage"); code != cmdline.ExitOK || !strings.Contains(out, "1. pool:green") {
		t.Errorf("triage without a name: exit %d\n%s", code, out)
	}
	var apiErr *APIError
	if _, err := c.Triage(t.Context(), "nope"); !errors.As(err, &apiErr) || apiErr.Status != http.StatusNotFound {
		t.Errorf("triage of an unknown deployment: %v, want a 404", err)
	}
}
