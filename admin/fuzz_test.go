package admin

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/a8e2c47e/switchback/configstore"
	"github.com/a8e2c47e/switchback/gateway"
	"github.com/a8e2c47e/switchback/internal/testharness/etcdtest"
	"github.com/a8e2c47e/switchback/rollout"
)

// fuzzRoutes are every mutation of the admin API, on a deployment that
// exists ("shop"), its pool green and its flag new-cart.
var fuzzRoutes = []struct{ method, path string }{
	{http.MethodPost, "/api/v1/deployments/shop/flip"},
	{http.MethodPut, "/api/v1/deployments/shop/weights"},
	{http.MethodPut, "/api/v1/deployments/shop/pools/green"},
	{http.MethodPut, "/api/v1/deployments/shop/flags/new-cart"},
	{http.MethodDelete, "/api/v1/deployments/shop/flags/new-cart"},
	{http.MethodPost, "/api/v1/deployments/shop/restore"},
	{http.MethodPost, "/api/v1/deployments/shop/rollback"},
	{http.MethodPost, "/api/v1/deployments/shop/rollouts"},
	{http.MethodPost, "/api/v1/deployments/shop/rollouts/pause"},
	{http.MethodPost, "/api/v1/deployments/shop/rollouts/resume"},
	{http.MethodPost, "/api/v1/deployments/shop/rollouts/abort"},
	{http.MethodPost, "/api/v1/releases"},
	{http.MethodPost, "/api/v1/releases/v2/finish"},
	{http.MethodPost, "/api/v1/releases/v2/rollback"},
	{http.MethodPost, "/api/v1/releases/v2/redeploy"},
}

// FuzzMutationBodies sends any body (and If-Match) to every mutation of a
// real admin server on a real etcd. Whatever it is: no panic and no 5xx;
// a refusal is a 4xx JSON error with a message (naming the field when the
// body was well-formed JSON), and changes neither the document nor the
// rollout; an acceptance
// answers JSON and leaves a document that validates.
func FuzzMutationBodies(f *testing.F) {
	seeds := []struct {
		route   int
		ifMatch string
		body    string
	}{
		{0, "", `{"reason": "ship green"}`},
		{0, `"1"`, `{}`},
		{0, "", ``},
		{1, "", `{"weights": {"blue": 70, "green": 30}, "reason": "canary"}`},
		{1, "", `{"weights": {"blue": 50, "green": 20}}`},
		{1, "", `{"Weights": {"blue": 50, "green": 50}}`},
		{1, "", `{"weights": {"blue": 50, "blue": 50}}`},
		{1, "", `{"weights": {"blue": "50"}}`},
		{2, "", `{"upstreams": ["127.0.0.1:9005"], "release": "v2", "force": true}`},
		{2, "", `{"upstreams": ["{http.request.header.X}:1"]}`},
		{3, "", `{"percent": 25.5, "reason": "more"}`},
		{3, "", `{"percent": 101}`},
		{3, "", `{"percent": null}`},
		{4, "", `{"reason": "done"}`},
		{5, "", `{"version": 1, "reason": "back"}`},
		{5, "", `{"version": 0}`},
		{6, "", `{"reason": "undo"}`},
		{7, "", `{"target": "pool:green", "steps": [1, 10, 50, 100], "bake": "30m", "reason": "ship"}`},
		{7, "", `{"target": "flag:new-cart", "steps": [20, 50], "bake": "1s"}`},
		{7, "", `{"target": "pool:purple", "steps": [10], "bake": "1m"}`},
		{8, "", `{"reason": "wait"}`},
		{9, "", `{}`},
		{10, "", `{"reason": "p95 creeping up"}`},
		{1, `"x"`, `{"weights": {"blue": 100, "green": 0}}`},
		{1, "", `{"weights": {"blue": 100, "green": 0}} {}`},
		{0, "", `{"reason": "` + strings.Repeat("é", 2000) + `"}`},
		{1, "", strings.Repeat("[", 20000)},
		{11, "", `{"name": "v2", "deployment": "shop", "pool": "green", "label": "v2", "upstreams": ["127.0.0.1:9002"], "reason": "ship"}`},
		{11, "", `{"name": "v3", "deployment": "shop", "pool": "green", "apply": {"weights": {"blue": 0, "green": 100}, "flags": {"new-cart": 50}}}`},
		{11, "", `{"name": "v4", "deployment": "shop", "pool": "purple"}`},
		{11, "", `{"name": "v5", "deployment": "shop", "pool": "green", "databases": {"main": {"version": 2, "min_version": 3}}}`},
		{12, "", `{"reason": "done"}`},
		{13, "", `{"plan": true}`},
		{13, "", `{"reason": "errors", "restore_data": true, "force": true}`},
		{14, "", `{"reason": "back to v1", "force": false}`},
	}
	for _, s := range seeds {
		f.Add(uint8(s.route), s.ifMatch, []byte(s.body))
	}

	store := etcdtest.NewStore(f)
	cfg := shopConfig()
	cfg.Guard = &gateway.Guard{ErrorRate: 5} // so rollouts can start
	if _, _, err := store.Bootstrap(f.Context(), cfg, configstore.Meta{Author: "test", Source: configstore.SourceBootstrap}); err != nil {
		f.Fatal(err)
	}
	srv, err := New(Options{
		Store:    store,
		Instance: "host-a",
		Live:     func(string) (uint64, bool) { return 1, true },
		Audit:    func(Record) {},
		Now:      func() time.Time { return testNow },
	})
	if err != nil {
		f.Fatal(err)
	}

	f.Fuzz(func(t *testing.T, route uint8, ifMatch string, body []byte) {
		rt := fuzzRoutes[int(route)%len(fuzzRoutes)]
		ctx := t.Context()
		before, err := store.Get(ctx, "shop")
		if err != nil {
			t.Fatal(err)
		}
		rec, _ := store.GetRecord(ctx, rollout.RecordKind, "shop")
		rolloutRev := rec.Rev
		releases := releaseStates(t, store)

		req := httptest.NewRequestWithContext(ctx, rt.method, rt.path, bytes.NewReader(body))
		req.RemoteAddr = "127.0.0.1:40000"
		req.Host = "127.0.0.1"
		req.Header.Set("Content-Type", "application/json")
		if ifMatch != "" {
			if !validHeaderValue(ifMatch) {
				return // net/http refuses to send it
			}
			req.Header.Set("If-Match", ifMatch)
		}
		w := httptest.NewRecorder()
		srv.ServeHTTP(w, req)
		what := fmt.Sprintf("%s %s If-Match %q body %.300q", rt.method, rt.path, ifMatch, body)

		switch status := w.Code; {
		case status >= 500:
			t.Fatalf("%s: %d %s", what, status, w.Body)
		case status >= 400:
			var e errorBody
			if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || e.Error == "" {
				t.Fatalf("%s: %d with no JSON error message: %s", what, status, w.Body)
			}
			// A well-formed body refused as bad input was refused for one
			// of its fields, which the answer names.
			// (A key that is the empty string cannot be named as a field,
			// which JSON answers leave out when empty; the message quotes it.)
			if status == http.StatusBadRequest && isObject(body) && e.Field == "" && !strings.Contains(e.Error, `field ""`) {
				t.Fatalf("%s: 400 without a field: %s", what, w.Body)
			}
			if strings.HasPrefix(e.Error, ":") {
				t.Fatalf("%s: the message starts with an empty name: %q", what, e.Error)
			}
			after, err := store.Get(ctx, "shop")
			if err != nil {
				t.Fatal(err)
			}
			if after.Meta.Version != before.Meta.Version {
				t.Fatalf("%s: refused with %d but the document went from version %d to %d", what, status, before.Meta.Version, after.Meta.Version)
			}
			if rec, _ := store.GetRecord(ctx, rollout.RecordKind, "shop"); rec.Rev != rolloutRev {
				t.Fatalf("%s: refused with %d but the rollout changed (revision %d to %d)", what, status, rolloutRev, rec.Rev)
			}
			if now := releaseStates(t, store); now != releases {
				t.Fatalf("%s: refused with %d but the releases changed:\n%s\nto\n%s", what, status, releases, now)
			}
		default:
			if !json.Valid(w.Body.Bytes()) {
				t.Fatalf("%s: %d with a body that is not JSON: %s", what, status, w.Body)
			}
			after, err := store.Get(ctx, "shop")
			if err != nil {
				t.Fatal(err)
			}
			if err := after.Config.Validate(); err != nil {
				t.Fatalf("%s: accepted (%d), and the document no longer validates: %v", what, status, err)
			}
		}
	})
}

// releaseStates lists every release record with its status and rollback,
// to tell whether a refused request changed any.
func releaseStates(t *testing.T, store *configstore.Store) string {
	t.Helper()
	rs, err := store.ListReleases(t.Context(), "")
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(rs)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// isObject says whether body is one well-formed JSON object.
func isObject(body []byte) bool {
	var m map[string]json.RawMessage
	return json.Unmarshal(body, &m) == nil
}

// validHeaderValue says whether net/http would send v as a header value.
func validHeaderValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}
