package admin

import (
	"context"
	"encoding/json"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/a8e2c47e/switchback/configstore"
	"github.com/a8e2c47e/switchback/gateway"
)

func TestGetDeployment(t *testing.T) {
	h := newHarness(t, nil)
	if err := h.store.ReportApplied(t.Context(), "host-b", "shop", 1); err != nil {
		t.Fatal(err)
	}
	r := h.do("GET", "/api/v1/deployments/shop", "")
	if r.status != http.StatusOK {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	if got, want := r.header.Get("ETag"), `"1"`; got != want {
		t.Errorf("ETag %s, want %s", got, want)
	}
	var d Deployment
	r.decode(t, &d)
	want := shopConfig()
	if d.Name != "shop" || d.Version != 1 || !reflect.DeepEqual(d.Pools, want.Pools) ||
		!reflect.DeepEqual(d.Weights, want.Weights) || !reflect.DeepEqual(d.Flags, want.Flags) {
		t.Errorf("got %+v, want %+v at version 1", d, want)
	}
	if d.Store != "ok" {
		t.Errorf("store %q, want ok", d.Store)
	}
	if want := map[string]uint64{"host-a": 1, "host-b": 1}; !reflect.DeepEqual(d.Instances, want) {
		t.Errorf("instances %v, want %v", d.Instances, want)
	}
	if d.Meta.Version != 1 || d.Meta.Author != "test" || d.Meta.Source != configstore.SourceBootstrap {
		t.Errorf("meta %+v", d.Meta)
	}
}

func TestReads(t *testing.T) {
	h := newHarness(t, nil)
	// Version 2 moves traffic, so history, versions and diff have something
	// to show.
	if r := h.do("POST", "/api/v1/deployments/shop/flip", `{"reason":"go green"}`); r.status != http.StatusOK {
		t.Fatalf("flip: %d %s", r.status, r.body)
	}

	t.Run("list", func(t *testing.T) {
		bootstrap(t, h.store, gateway.Config{Name: "api", Pools: shopConfig().Pools, Weights: map[string]float64{"blue": 50, "green": 50}})
		var l DeploymentList
		r := h.do("GET", "/api/v1/deployments", "")
		r.decode(t, &l)
		var names []string
		for _, d := range l.Deployments {
			names = append(names, d.Name)
		}
		if want := []string{"api", "shop"}; !reflect.DeepEqual(names, want) {
			t.Errorf("names %v, want %v", names, want)
		}
	})
	t.Run("history", func(t *testing.T) {
		var hist History
		h.do("GET", "/api/v1/deployments/shop/history", "").decode(t, &hist)
		if len(hist.History) != 2 || hist.History[0].Version != 2 || hist.History[1].Version != 1 {
			t.Fatalf("history %+v, want versions 2, 1", hist.History)
		}
		m := hist.History[0]
		if m.Author != "local" || m.Reason != "go green" || m.Source != configstore.SourceAPI || m.Summary == "" {
			t.Errorf("newest %+v", m)
		}
		h.do("GET", "/api/v1/deployments/shop/history?limit=1", "").decode(t, &hist)
		if len(hist.History) != 1 || hist.History[0].Version != 2 {
			t.Errorf("limit=1: %+v", hist.History)
		}
	})
	t.Run("version", func(t *testing.T) {
		var d Deployment
		r := h.do("GET", "/api/v1/deployments/shop/versions/1", "")
		r.decode(t, &d)
		if d.Version != 1 || d.Weights["blue"] != 100 || d.Meta.Version != 1 {
			t.Errorf("version 1: %+v", d)
		}
	})
	t.Run("diff", func(t *testing.T) {
		want := []configstore.Change{{Path: "weights.blue", From: 100.0, To: 0.0}, {Path: "weights.green", From: 0.0, To: 100.0}}
		tests := []struct {
			query    string
			from, to uint64
			changes  []configstore.Change
		}{
			{"", 1, 2, want},
			{"?from=1&to=2", 1, 2, want},
			{"?to=2", 1, 2, want},
			{"?from=2&to=2", 2, 2, []configstore.Change{}},
		}
		for _, tt := range tests {
			var got DiffResult
			h.do("GET", "/api/v1/deployments/shop/diff"+tt.query, "").decode(t, &got)
			if got.From != tt.from || got.To != tt.to || !reflect.DeepEqual(got.Changes, tt.changes) {
				t.Errorf("diff%s = %+v, want %d..%d %v", tt.query, got, tt.from, tt.to, tt.changes)
			}
		}
	})
	t.Run("healthz", func(t *testing.T) {
		r := h.do("GET", "/healthz", "")
		var got Health
		r.decode(t, &got)
		if r.status != http.StatusOK || got.Store != "ok" {
			t.Errorf("healthz %d %s", r.status, r.body)
		}
	})
	t.Run("metrics", func(t *testing.T) {
		r := h.do("GET", "/metrics", "")
		want := `switchback_admin_requests_total{code="200",method="POST",route="/api/v1/deployments/{name}/flip"} 1`
		if r.status != http.StatusOK || !strings.Contains(string(r.body), want) {
			t.Errorf("metrics %d, want a line %s in:\n%s", r.status, want, r.body)
		}
	})
}

// TestMutations runs every mutation on a fresh deployment and checks the
// answer, the stored document and the audit record.
func TestMutations(t *testing.T) {
	tests := []struct {
		name        string
		prepare     string // a flip first, so restore and rollback have history
		method      string
		path        string
		body        string
		hdr         []string
		check       func(gateway.Config) bool
		action      string
		wantChanges []string
	}{
		{name: "flip", method: "POST", path: "/flip", body: `{"reason":"ship 1.1"}`,
			check:  func(c gateway.Config) bool { return c.Weights["green"] == 100 && c.Weights["blue"] == 0 },
			action: "flip", wantChanges: []string{"weights.blue", "weights.green"}},
		{name: "flip back", prepare: "flip", method: "POST", path: "/flip", body: `{}`,
			check:  func(c gateway.Config) bool { return c.Weights["blue"] == 100 && c.Weights["green"] == 0 },
			action: "flip", wantChanges: []string{"weights.blue", "weights.green"}},
		{name: "weights", method: "PUT", path: "/weights", body: `{"weights":{"blue":70,"green":30},"reason":"canary"}`,
			check:  func(c gateway.Config) bool { return c.Weights["blue"] == 70 && c.Weights["green"] == 30 },
			action: "weights", wantChanges: []string{"weights.blue", "weights.green"}},
		{name: "pool", method: "PUT", path: "/pools/green", body: `{"upstreams":["127.0.0.1:9004"],"release":"v1.2.4","reason":"new build"}`,
			check: func(c gateway.Config) bool {
				return c.Pools["green"].Release == "v1.2.4" && reflect.DeepEqual(c.Pools["green"].Upstreams, []string{"127.0.0.1:9004"})
			},
			action: "pool", wantChanges: []string{"pools.green.release", "pools.green.upstreams"}},
		{name: "set flag", method: "PUT", path: "/flags/new-cart", body: `{"percent":25.5}`,
			check:  func(c gateway.Config) bool { return c.Flags["new-cart"].Percent == 25.5 },
			action: "flag", wantChanges: []string{"flags.new-cart.percent"}},
		{name: "add flag", method: "PUT", path: "/flags/dark-mode", body: `{"percent":0}`,
			check:  func(c gateway.Config) bool { _, ok := c.Flags["dark-mode"]; return ok },
			action: "flag", wantChanges: []string{"flags.dark-mode"}},
		{name: "delete flag without body", method: "DELETE", path: "/flags/new-cart",
			check:  func(c gateway.Config) bool { _, ok := c.Flags["new-cart"]; return !ok },
			action: "delete-flag", wantChanges: []string{"flags.new-cart"}},
		{name: "delete flag with reason", method: "DELETE", path: "/flags/new-cart", body: `{"reason":"done"}`,
			check:  func(c gateway.Config) bool { _, ok := c.Flags["new-cart"]; return !ok },
			action: "delete-flag", wantChanges: []string{"flags.new-cart"}},
		{name: "restore", prepare: "flip", method: "POST", path: "/restore", body: `{"version":1,"reason":"bad release"}`,
			check:  func(c gateway.Config) bool { return c.Weights["blue"] == 100 },
			action: "restore", wantChanges: []string{"weights.blue", "weights.green"}},
		{name: "rollback", prepare: "flip", method: "POST", path: "/rollback", body: `{"reason":"errors"}`,
			check:  func(c gateway.Config) bool { return c.Weights["blue"] == 100 },
			action: "rollback", wantChanges: []string{"weights.blue", "weights.green"}},
		{name: "if-match quoted", method: "PUT", path: "/weights", body: `{"weights":{"blue":0,"green":100}}`, hdr: []string{"If-Match", `"1"`},
			check:  func(c gateway.Config) bool { return c.Weights["green"] == 100 },
			action: "weights", wantChanges: []string{"weights.blue", "weights.green"}},
		{name: "if-match bare, from the cli", method: "POST", path: "/flip", body: `{}`, hdr: []string{"If-Match", "1", clientHeader, "cli"},
			check:  func(c gateway.Config) bool { return c.Weights["green"] == 100 },
			action: "flip", wantChanges: []string{"weights.blue", "weights.green"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, nil)
			if tt.prepare == "flip" {
				if r := h.do("POST", "/api/v1/deployments/shop/flip", "{}"); r.status != http.StatusOK {
					t.Fatalf("prepare: %d %s", r.status, r.body)
				}
			}
			before := h.current("shop").Meta.Version
			r := h.do(tt.method, "/api/v1/deployments/shop"+tt.path, tt.body, tt.hdr...)
			if r.status != http.StatusOK {
				t.Fatalf("status %d: %s", r.status, r.body)
			}
			var d Deployment
			r.decode(t, &d)
			want := before + 1
			if d.Version != want || r.header.Get("ETag") != `"`+itoa(want)+`"` {
				t.Errorf("answered version %d ETag %s, want %d", d.Version, r.header.Get("ETag"), want)
			}
			doc := h.current("shop")
			if doc.Meta.Version != want || !tt.check(doc.Config) {
				t.Errorf("stored version %d %+v, want version %d passing the check", doc.Meta.Version, doc.Config, want)
			}
			if !tt.check(d.Config()) {
				t.Errorf("answer %+v does not show the change", d)
			}
			if d.Store != "ok" || d.Instances["host-a"] != 1 {
				t.Errorf("answer lacks state: store %q instances %v", d.Store, d.Instances)
			}

			rec := h.audit.last(t)
			var paths []string
			for _, c := range rec.Changes {
				paths = append(paths, c.Path)
			}
			wantSource := configstore.SourceAPI
			if strings.Contains(tt.name, "cli") {
				wantSource = configstore.SourceCLI
			}
			var req struct{ Reason string }
			_ = decodeJSONString(tt.body, &req)
			if rec.Who != "local" || rec.Action != tt.action || rec.Deployment != "shop" || rec.Status != 200 ||
				rec.From != before || rec.Version != want || rec.Reason != req.Reason || rec.Source != wantSource ||
				!rec.Time.Equal(testNow) || !reflect.DeepEqual(paths, tt.wantChanges) {
				t.Errorf("audit %+v, want %s by local from %d to %d, changes %v", rec, tt.action, before, want, tt.wantChanges)
			}
			if doc.Meta.Author != "local" || doc.Meta.Source != wantSource || doc.Meta.Reason != req.Reason {
				t.Errorf("version meta %+v", doc.Meta)
			}
		})
	}
}

func TestNoOpMutation(t *testing.T) {
	h := newHarness(t, nil)
	r := h.do("PUT", "/api/v1/deployments/shop/weights", `{"weights":{"blue":100,"green":0}}`)
	var d Deployment
	r.decode(t, &d)
	if r.status != http.StatusOK || d.Version != 1 || h.historyLen("shop") != 1 {
		t.Errorf("no-op: status %d version %d history %d, want 200, 1, 1", r.status, d.Version, h.historyLen("shop"))
	}
	if rec := h.audit.last(t); rec.Version != 1 || rec.From != 1 || len(rec.Changes) != 0 {
		t.Errorf("audit %+v, want no changes at version 1", rec)
	}
}

// TestRejected sends every kind of bad request and checks the answer and
// that nothing was written.
func TestRejected(t *testing.T) {
	h := newHarness(t, nil)
	bootstrap(t, h.store, gateway.Config{Name: "trio",
		Pools: map[string]gateway.Pool{
			"a": {Upstreams: []string{"127.0.0.1:1"}}, "b": {Upstreams: []string{"127.0.0.1:2"}}, "c": {Upstreams: []string{"127.0.0.1:3"}}},
		Weights: map[string]float64{"a": 100}})
	bootstrap(t, h.store, gateway.Config{Name: "even", Pools: shopConfig().Pools, Weights: map[string]float64{"blue": 50, "green": 50}})
	const shop = "/api/v1/deployments/shop"
	big := `{"reason":"` + strings.Repeat("x", 2<<20) + `"}`
	tests := []struct {
		name, method, path, body string
		hdr                      []string
		status                   int
		field                    string
	}{
		{"weights sum", "PUT", shop + "/weights", `{"weights":{"blue":70,"green":20}}`, nil, 400, "weights"},
		{"weights unknown pool", "PUT", shop + "/weights", `{"weights":{"blue":50,"purple":50}}`, nil, 400, "weights.purple"},
		{"weights negative", "PUT", shop + "/weights", `{"weights":{"blue":110,"green":-10}}`, nil, 400, "weights.blue"},
		{"weights empty", "PUT", shop + "/weights", `{"weights":{}}`, nil, 400, "weights"},
		{"weights missing", "PUT", shop + "/weights", `{}`, nil, 400, "weights"},
		{"weights wrong type", "PUT", shop + "/weights", `{"weights":{"blue":"all"}}`, nil, 400, "weights"},
		{"percent over 100", "PUT", shop + "/flags/new-cart", `{"percent":150}`, nil, 400, "flags.new-cart.percent"},
		{"percent negative", "PUT", shop + "/flags/new-cart", `{"percent":-1}`, nil, 400, "flags.new-cart.percent"},
		{"percent missing", "PUT", shop + "/flags/new-cart", `{"reason":"x"}`, nil, 400, "percent"},
		{"bad flag name", "PUT", shop + "/flags/-x", `{"percent":5}`, nil, 400, "flags"},
		{"malformed JSON", "PUT", shop + "/weights", `{"weights":`, nil, 400, ""},
		{"syntax error", "POST", shop + "/flip", `{reason}`, nil, 400, ""},
		{"unknown field", "POST", shop + "/flip", `{"reason":"x","colour":"green"}`, nil, 400, "colour"},
		{"duplicate key", "POST", shop + "/flip", `{"reason":"a","reason":"b"}`, nil, 400, "reason"},
		{"duplicate nested key", "PUT", shop + "/weights", `{"weights":{"blue":100,"green":0,"blue":0}}`, nil, 400, "weights.blue"},
		{"duplicate key in pool body", "PUT", shop + "/pools/green", `{"upstreams":["127.0.0.1:9009"],"release":"v2","release":"v3"}`, nil, 400, "release"},
		{"field name case", "POST", shop + "/flip", `{"Reason":"x"}`, nil, 400, "Reason"},
		{"field name case after exact", "PUT", shop + "/weights", `{"weights":{"blue":100,"green":0},"WEIGHTS":{"green":100}}`, nil, 400, "WEIGHTS"},
		{"nested unknown field", "POST", shop + "/rollouts", `{"target":"pool:green","steps":[10],"bake":"1m","extra":{"a":1,"a":2}}`, nil, 400, "extra"},
		{"weights leave a pool out", "PUT", shop + "/weights", `{"weights":{"blue":100}}`, nil, 400, "weights"},
		{"pool placeholder upstream", "PUT", shop + "/pools/green", `{"upstreams":["{http.request.header.X-Evil}:19101"]}`, nil, 400, "pools.green.upstreams"},
		{"two objects", "POST", shop + "/flip", `{} {}`, nil, 400, ""},
		{"reason too long", "POST", shop + "/flip", `{"reason":"` + strings.Repeat("é", 501) + `"}`, nil, 400, "reason"},
		{"body over 1 MiB", "POST", shop + "/flip", big, nil, 413, ""},
		{"unknown pool", "PUT", shop + "/pools/purple", `{"upstreams":["127.0.0.1:9009"]}`, nil, 404, "pool"},
		{"pool without upstreams", "PUT", shop + "/pools/green", `{"release":"v2"}`, nil, 400, "pools.green.upstreams"},
		{"pool bad upstream", "PUT", shop + "/pools/green", `{"upstreams":["https://x:1"]}`, nil, 400, "pools.green.upstreams"},
		{"delete unknown flag", "DELETE", shop + "/flags/nope", "", nil, 404, "flag"},
		{"unknown deployment", "POST", "/api/v1/deployments/nope/flip", `{}`, nil, 404, "name"},
		{"unknown deployment get", "GET", "/api/v1/deployments/nope", "", nil, 404, "name"},
		{"flip three pools", "POST", "/api/v1/deployments/trio/flip", `{}`, nil, 400, "pools"},
		{"flip even split", "POST", "/api/v1/deployments/even/flip", `{}`, nil, 400, "weights"},
		{"restore without version", "POST", shop + "/restore", `{"reason":"x"}`, nil, 400, "version"},
		{"restore unknown version", "POST", shop + "/restore", `{"version":99}`, nil, 404, "version"},
		{"rollback at version 1", "POST", shop + "/rollback", `{}`, nil, 404, "version"},
		{"if-match stale", "POST", shop + "/flip", `{}`, []string{"If-Match", `"7"`}, 409, "If-Match"},
		{"if-match stale restore", "POST", shop + "/restore", `{"version":1}`, []string{"If-Match", "2"}, 409, "If-Match"},
		{"if-match malformed", "POST", shop + "/flip", `{}`, []string{"If-Match", `W/"1"`}, 400, "If-Match"},
		{"history limit zero", "GET", shop + "/history?limit=0", "", nil, 400, "limit"},
		{"history limit too big", "GET", shop + "/history?limit=1001", "", nil, 400, "limit"},
		{"history limit text", "GET", shop + "/history?limit=ten", "", nil, 400, "limit"},
		{"version not a number", "GET", shop + "/versions/latest", "", nil, 400, "version"},
		{"version unknown", "GET", shop + "/versions/99", "", nil, 404, "version"},
		{"diff from text", "GET", shop + "/diff?from=x", "", nil, 400, "from"},
		{"diff to unknown", "GET", shop + "/diff?to=42", "", nil, 404, "to"},
		{"text/plain", "POST", shop + "/flip", `{}`, []string{"Content-Type", "text/plain"}, 415, "Content-Type"},
		{"form post", "PUT", shop + "/weights", `weights=x`, []string{"Content-Type", "application/x-www-form-urlencoded"}, 415, "Content-Type"},
		{"no content type", "POST", shop + "/rollback", "", nil, 415, "Content-Type"},
		{"GET on flip", "GET", shop + "/flip", "", nil, 405, ""},
		{"GET on restore", "GET", shop + "/restore?version=1", "", nil, 405, ""},
		{"PATCH weights", "PATCH", shop + "/weights", `{"weights":{"green":100}}`, nil, 405, ""},
		{"unknown route", "GET", "/api/v1/nothing", "", nil, 404, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := map[string]uint64{}
			for _, n := range []string{"shop", "trio", "even"} {
				before[n] = h.current(n).Meta.Version
			}
			audits := len(h.audit.all())
			r := h.do(tt.method, tt.path, tt.body, tt.hdr...)
			if r.status != tt.status {
				t.Fatalf("status %d, want %d: %s", r.status, tt.status, r.body)
			}
			if ct := r.header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q, want application/json", ct)
			}
			if e := r.errorBody(t); e.Field != tt.field {
				t.Errorf("field %q, want %q (error %q)", e.Field, tt.field, e.Error)
			}
			for n, v := range before {
				if got := h.current(n).Meta.Version; got != v {
					t.Errorf("%s at version %d after a rejected request, want %d", n, got, v)
				}
			}
			// A mutation that reached its handler is audited as refused.
			if recs := h.audit.all(); len(recs) > audits {
				if rec := recs[len(recs)-1]; rec.Status != tt.status || rec.Error == "" || rec.Version != 0 {
					t.Errorf("audit %+v, want a refusal with status %d", rec, tt.status)
				}
			}
		})
	}
	if got := h.historyLen("shop"); got != 1 {
		t.Errorf("shop has %d versions after rejected requests, want 1", got)
	}
	if r := h.do("GET", shop+"/flip", ""); r.header.Get("Allow") != "POST" {
		t.Errorf("405 Allow %q, want POST", r.header.Get("Allow"))
	}
}

func TestStoreUnavailable(t *testing.T) {
	// A store on a port nothing listens on: every call times out.
	store, err := configstore.Dial(configstore.DialConfig{Endpoints: []string{"127.0.0.1:1"}, Logger: zap.NewNop()},
		configstore.WithTimeout(200*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	s, err := New(Options{Store: store})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ method, path, body string }{
		{"GET", "/healthz", ""},
		{"GET", "/api/v1/deployments/shop", ""},
		{"GET", "/api/v1/deployments", ""},
		{"POST", "/api/v1/deployments/shop/flip", "{}"},
	}
	for _, tt := range tests {
		req := newLocalRequest(t.Context(), tt.method, tt.path, tt.body)
		w := serve(s, req)
		if w.Code != http.StatusServiceUnavailable {
			t.Errorf("%s %s: status %d, want 503: %s", tt.method, tt.path, w.Code, w.Body)
		}
		if tt.path != "/healthz" && w.Header().Get("Retry-After") == "" {
			t.Errorf("%s %s: 503 without Retry-After", tt.method, tt.path)
		}
	}
}

func TestStoreHealthOption(t *testing.T) {
	healthy := false
	h := newHarness(t, func(o *Options) {
		o.StoreHealth = func() (bool, error) { return healthy, context.DeadlineExceeded }
	})
	if r := h.do("GET", "/healthz", ""); r.status != http.StatusServiceUnavailable {
		t.Errorf("unhealthy: status %d, want 503", r.status)
	}
	var d Deployment
	h.do("GET", "/api/v1/deployments/shop", "").decode(t, &d)
	if !strings.HasPrefix(d.Store, "unhealthy") {
		t.Errorf("store %q, want unhealthy: ...", d.Store)
	}
	healthy = true
	if r := h.do("GET", "/healthz", ""); r.status != http.StatusOK {
		t.Errorf("healthy: status %d, want 200", r.status)
	}
}

func TestConcurrentIfMatch(t *testing.T) {
	h := newHarness(t, nil)
	// Two operators read version 1 and both send a change conditional on
	// it: exactly one wins, the other gets 409.
	codes := make(chan int, 2)
	for _, body := range []string{`{"weights":{"blue":60,"green":40}}`, `{"weights":{"blue":40,"green":60}}`} {
		go func() {
			req, _ := http.NewRequestWithContext(t.Context(), "PUT", h.srv.URL+"/api/v1/deployments/shop/weights", strings.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("If-Match", `"1"`)
			resp, err := h.srv.Client().Do(req)
			if err != nil {
				codes <- 0
				return
			}
			resp.Body.Close()
			codes <- resp.StatusCode
		}()
	}
	got := map[int]int{<-codes: 1}
	got[<-codes]++
	if got[200] != 1 || got[409] != 1 {
		t.Errorf("statuses %v, want one 200 and one 409", got)
	}
	if v := h.current("shop").Meta.Version; v != 2 {
		t.Errorf("version %d, want 2", v)
	}
}

func itoa(v uint64) string { return strconv.FormatUint(v, 10) }

func decodeJSONString(s string, v any) error {
	if s == "" {
		return nil
	}
	return json.Unmarshal([]byte(s), v)
}

// TestRetainedTargetProtected: after a flip the pool traffic left is the
// rollback target; replacing its upstreams is refused until retention ends,
// unless forced.
func TestRetainedTargetProtected(t *testing.T) {
	h := newHarness(t, nil)
	if r := h.do("POST", "/api/v1/deployments/shop/flip", `{"reason": "ship green"}`); r.status != 200 {
		t.Fatalf("flip: %d %s", r.status, r.body)
	}
	flipped := h.current("shop")
	if _, ok := flipped.Retained["blue"]; !ok {
		t.Fatalf("after the flip blue is not retained: %v", flipped.Retained)
	}
	var d Deployment
	h.do("GET", "/api/v1/deployments/shop", "").decode(t, &d)
	if !d.Retained["blue"].Equal(flipped.Retained["blue"]) {
		t.Errorf("status shows retained %v, want blue until %v", d.Retained, flipped.Retained["blue"])
	}
	r := h.do("PUT", "/api/v1/deployments/shop/pools/blue", `{"upstreams": ["127.0.0.1:9010"], "release": "v3"}`)
	if r.status != http.StatusConflict || r.errorBody(t).Field != "pool" || !strings.Contains(r.errorBody(t).Error, "rollback target until") {
		t.Fatalf("replacing the retained pool: %d %s; want 409 on field pool", r.status, r.body)
	}
	if got := h.current("shop").Meta.Version; got != flipped.Meta.Version {
		t.Errorf("a refused change wrote version %d", got)
	}
	// green, which takes the traffic, is not protected; forcing blue works.
	if r := h.do("PUT", "/api/v1/deployments/shop/pools/green", `{"upstreams": ["127.0.0.1:9011"], "release": "v2.1"}`); r.status != 200 {
		t.Errorf("replacing the live pool: %d %s", r.status, r.body)
	}
	if r := h.do("PUT", "/api/v1/deployments/shop/pools/blue", `{"upstreams": ["127.0.0.1:9010"], "release": "v3", "force": true}`); r.status != 200 {
		t.Errorf("forced replace: %d %s", r.status, r.body)
	}
}
