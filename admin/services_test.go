package admin

import (
	"bufio"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/a8e2c47e/switchback/configstore"
)

func (h *harness) putService(name, cfg string) Service {
	h.t.Helper()
	resp := h.do("PUT", "/api/v1/services/"+name, `{"config": `+cfg+`, "reason": "setup"}`)
	if resp.status != http.StatusOK {
		h.t.Fatalf("PUT %s = %d %s", name, resp.status, resp.body)
	}
	var s Service
	resp.decode(h.t, &s)
	return s
}

func (h *harness) serviceVersion(name string) uint64 {
	h.t.Helper()
	doc, err := h.store.GetService(h.t.Context(), name)
	if err != nil {
		h.t.Fatal(err)
	}
	return doc.Meta.Version
}

func TestServiceAPI(t *testing.T) {
	h := newHarness(t, nil)
	created := h.putService("payments", `{"db": {"pool": {"max": 20}}, "timeout": "2s"}`)
	if created.Version != 1 || created.Meta.Author != "local" {
		t.Fatalf("created = %+v", created)
	}
	get := h.do("GET", "/api/v1/services/payments", "")
	if get.status != http.StatusOK || get.header.Get("ETag") != `"1"` || get.header.Get(ConfigVersionHeader) != "1" {
		t.Fatalf("GET = %d, ETag %q, version %q", get.status, get.header.Get("ETag"), get.header.Get(ConfigVersionHeader))
	}
	if nm := h.do("GET", "/api/v1/services/payments", "", "If-None-Match", `"1"`); nm.status != http.StatusNotModified {
		t.Fatalf("If-None-Match current = %d, want 304", nm.status)
	}
	patch := h.do("PATCH", "/api/v1/services/payments", `{"patch": {"db": {"pool": {"max": 50}}}, "reason": "load"}`, "If-Match", `"1"`)
	if patch.status != http.StatusOK || patch.header.Get(ConfigVersionHeader) != "2" {
		t.Fatalf("PATCH = %d %s", patch.status, patch.body)
	}
	rec := h.audit.last(t)
	if rec.Service != "payments" || rec.Action != "patch" || rec.Version != 2 || len(rec.Changes) != 1 || rec.Changes[0].Path != "db.pool.max" {
		t.Fatalf("audit = %+v", rec)
	}
	var diff DiffResult
	h.do("GET", "/api/v1/services/payments/diff?from=1&to=2", "").decode(t, &diff)
	if len(diff.Changes) != 1 || diff.Changes[0].Path != "db.pool.max" {
		t.Fatalf("diff = %+v", diff)
	}
	var hist History
	h.do("GET", "/api/v1/services/payments/history?limit=1", "").decode(t, &hist)
	if len(hist.History) != 1 || hist.History[0].Version != 2 || hist.History[0].Reason != "load" {
		t.Fatalf("history = %+v", hist)
	}
	var v1 Service
	h.do("GET", "/api/v1/services/payments/versions/1", "").decode(t, &v1)
	if v1.Version != 1 || !strings.Contains(string(v1.Config), `"max":20`) {
		t.Fatalf("version 1 = %+v", v1)
	}
	var rb Service
	if resp := h.do("POST", "/api/v1/services/payments/rollback", `{"reason": "bad"}`); resp.status != http.StatusOK {
		t.Fatalf("rollback = %d %s", resp.status, resp.body)
	} else {
		resp.decode(t, &rb)
	}
	if rb.Version != 3 || rb.Meta.RestoredFrom != 1 {
		t.Fatalf("rollback = %+v", rb)
	}
	if resp := h.do("POST", "/api/v1/services/payments/restore", `{"version": 2, "reason": "again"}`); resp.status != http.StatusOK || resp.header.Get(ConfigVersionHeader) != "4" {
		t.Fatalf("restore = %d %s", resp.status, resp.body)
	}
	var list ServiceList
	h.do("GET", "/api/v1/services", "").decode(t, &list)
	if len(list.Services) != 1 || list.Services[0].Version != 4 {
		t.Fatalf("list = %+v", list)
	}
}

func TestServiceAPIBadInput(t *testing.T) {
	h := newHarness(t, nil)
	h.putService("payments", `{"db": {"pool": {"max": 20}}}`)
	if resp := h.do("PUT", "/api/v1/services/payments/schema",
		`{"schema": {"properties": {"db": {"properties": {"pool": {"properties": {"max": {"type": "integer", "maximum": 100}}}}}}}}`); resp.status != http.StatusOK {
		t.Fatalf("PUT schema = %d %s", resp.status, resp.body)
	}
	big := `{"config": {"blob": "` + strings.Repeat("x", configstore.MaxServiceConfig) + `"}}`
	tests := []struct {
		name, method, path, body string
		hdr                      []string
		status                   int
		field                    string
	}{
		{"schema violation", "PATCH", "/api/v1/services/payments", `{"patch": {"db": {"pool": {"max": 500}}}}`, nil, 400, "db.pool.max"},
		{"over 256 KiB", "PUT", "/api/v1/services/payments", big, nil, 400, "config"},
		{"patch not an object", "PATCH", "/api/v1/services/payments", `{"patch": [1, 2]}`, nil, 400, "patch"},
		{"config not an object", "PUT", "/api/v1/services/payments", `{"config": "x"}`, nil, 400, "config"},
		{"unknown service", "PATCH", "/api/v1/services/nosuch", `{"patch": {"a": 1}}`, nil, 404, "name"},
		{"stale If-Match", "PATCH", "/api/v1/services/payments", `{"patch": {"a": 1}}`, []string{"If-Match", `"9"`}, 409, "If-Match"},
		{"unknown field", "PUT", "/api/v1/services/payments", `{"cfg": {}}`, nil, 400, "cfg"},
		{"bad wait", "GET", "/api/v1/services/payments?wait=forever", "", nil, 400, "wait"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := h.do(tt.method, tt.path, tt.body, tt.hdr...)
			if resp.status != tt.status {
				t.Fatalf("status = %d %s, want %d", resp.status, resp.body, tt.status)
			}
			if e := resp.errorBody(t); e.Field != tt.field {
				t.Fatalf("field = %q (%s), want %q", e.Field, e.Error, tt.field)
			}
			if v := h.serviceVersion("payments"); v != 1 {
				t.Fatalf("version %d after refused request, want 1", v)
			}
		})
	}
	// The schema violation names the value and what is accepted.
	resp := h.do("PATCH", "/api/v1/services/payments", `{"patch": {"db": {"pool": {"max": 500}}}}`)
	if e := resp.errorBody(t); !strings.Contains(e.Error, "500") || !strings.Contains(e.Error, "maximum") {
		t.Fatalf("schema error %q: want the value 500 and the maximum", e.Error)
	}
}

func TestServiceLongPollAndStream(t *testing.T) {
	h := newHarness(t, nil)
	h.putService("payments", `{"n": 1}`)

	if resp := h.do("GET", "/api/v1/services/payments?wait=50ms&after=1", ""); resp.status != http.StatusNotModified {
		t.Fatalf("long poll with nothing new = %d, want 304", resp.status)
	}

	// The stream opens and delivers version 1 before the write, so the
	// write below is seen as an event, not as the first state.
	req, err := http.NewRequestWithContext(t.Context(), "GET", h.srv.URL+"/api/v1/services/payments?follow=1", nil)
	if err != nil {
		t.Fatal(err)
	}
	stream, err := h.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Body.Close()
	events := sseVersions(t, stream)
	if v := <-events; v != 1 {
		t.Fatalf("first event version %d, want 1", v)
	}

	polled := make(chan response, 1)
	go func() { polled <- h.do("GET", "/api/v1/services/payments?wait=10s&after=1", "") }()
	h.putService("payments", `{"n": 2}`)
	if resp := <-polled; resp.status != http.StatusOK || resp.header.Get(ConfigVersionHeader) != "2" {
		t.Fatalf("long poll = %d %s, want version 2", resp.status, resp.body)
	}
	if v := <-events; v != 2 {
		t.Fatalf("stream event version %d, want 2", v)
	}
}

// sseVersions reads a service event stream, sending each event's version.
func sseVersions(t *testing.T, resp *http.Response) <-chan uint64 {
	t.Helper()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("stream = %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	out := make(chan uint64, 16)
	go func() {
		defer close(out)
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			data, ok := strings.CutPrefix(sc.Text(), "data: ")
			if !ok {
				continue
			}
			var s Service
			if json.Unmarshal([]byte(data), &s) == nil {
				out <- s.Version
			}
		}
	}()
	return out
}

func TestChangeSetAPI(t *testing.T) {
	h := newHarness(t, nil)
	for _, n := range []string{"payments", "search", "ledger"} {
		h.putService(n, `{"timeout_ms": 1000}`)
	}
	resp := h.do("POST", "/api/v1/changesets", `{"reason": "raise timeouts", "changes": [
		{"service": "payments", "patch": {"timeout_ms": 2000}},
		{"service": "search", "patch": {"timeout_ms": 2000}},
		{"service": "ledger", "patch": {"timeout_ms": 2000}},
		{"deployment": "shop", "patch": {"weights": {"blue": 0, "green": 100}}}]}`)
	if resp.status != http.StatusOK {
		t.Fatalf("apply = %d %s", resp.status, resp.body)
	}
	var cs configstore.ChangeSet
	resp.decode(t, &cs)
	if len(cs.Entries) != 4 || h.audit.last(t).ChangeSet != cs.ID {
		t.Fatalf("change set = %+v", cs)
	}
	var got configstore.ChangeSet
	h.do("GET", "/api/v1/changesets/"+cs.ID, "").decode(t, &got)
	if got.ID != cs.ID || got.Reason != "raise timeouts" {
		t.Fatalf("GET change set = %+v", got)
	}

	h.do("PATCH", "/api/v1/services/ledger", `{"patch": {"timeout_ms": 2500}}`)
	resp = h.do("POST", "/api/v1/changesets/"+cs.ID+"/revert", `{"reason": "undo"}`)
	if resp.status != http.StatusConflict {
		t.Fatalf("revert over a later change = %d %s, want 409", resp.status, resp.body)
	}
	if e := resp.errorBody(t); !strings.Contains(e.Error, `"ledger"`) || !strings.Contains(e.Error, "version 3") || e.Field != "force" {
		t.Fatalf("conflict %+v: want ledger and version 3", e)
	}
	if v := h.serviceVersion("payments"); v != 2 {
		t.Fatalf("payments at %d after refused revert, want 2", v)
	}
	resp = h.do("POST", "/api/v1/changesets/"+cs.ID+"/revert", `{"reason": "undo", "force": true}`)
	if resp.status != http.StatusOK {
		t.Fatalf("forced revert = %d %s", resp.status, resp.body)
	}
	for _, n := range []string{"payments", "search", "ledger"} {
		var s Service
		h.do("GET", "/api/v1/services/"+n, "").decode(t, &s)
		if string(s.Config) != `{"timeout_ms":1000}` {
			t.Fatalf("%s after revert = %s", n, s.Config)
		}
	}
	if w := h.current("shop").Config.Weights["blue"]; w != 100 {
		t.Fatalf("shop blue after revert = %v, want 100", w)
	}
	var events eventsList
	h.do("GET", "/api/v1/events?deployment=ledger", "").decode(t, &events)
	kinds := map[string]bool{}
	for _, ev := range events.Events {
		kinds[ev.Kind] = true
	}
	if !kinds["changeset_applied"] || !kinds["changeset_reverted"] || !kinds["service_patch"] {
		t.Fatalf("events of ledger = %+v, want the change set, its revert and the patch", events.Events)
	}
	var list ChangeSetList
	h.do("GET", "/api/v1/changesets?limit=5", "").decode(t, &list)
	if len(list.ChangeSets) != 2 || list.ChangeSets[1].RevertedBy != list.ChangeSets[0].ID {
		t.Fatalf("list = %+v", list)
	}
	if resp := h.do("POST", "/api/v1/changesets", `{"reason": "x", "changes": [{"service": "payments", "patch": 5}]}`); resp.status != 400 || resp.errorBody(t).Field != "changes[0].patch" {
		t.Fatalf("patch not an object = %d %s", resp.status, resp.body)
	}
}

func TestServiceTokenScope(t *testing.T) {
	const teamToken = "team-secret-token"
	path := writeTokens(t, "ops operator "+HashToken(operatorToken)+"\n"+
		"team operator "+HashToken(teamToken)+" services=payments,search\n")
	h := newHarness(t, func(o *Options) { o.Tokens = path })
	ops := []string{"Authorization", "Bearer " + operatorToken}
	team := []string{"Authorization", "Bearer " + teamToken}
	for _, n := range []string{"payments", "ledger"} {
		if resp := h.do("PUT", "/api/v1/services/"+n, `{"config": {"a": 1}}`, ops...); resp.status != 200 {
			t.Fatalf("PUT %s = %d %s", n, resp.status, resp.body)
		}
	}
	if resp := h.do("PATCH", "/api/v1/services/payments", `{"patch": {"a": 2}}`, team...); resp.status != 200 {
		t.Fatalf("team PATCH payments = %d %s", resp.status, resp.body)
	}
	for _, tt := range []struct{ method, path, body string }{
		{"GET", "/api/v1/services/ledger", ""},
		{"PATCH", "/api/v1/services/ledger", `{"patch": {"a": 2}}`},
		{"POST", "/api/v1/changesets", `{"changes": [{"service": "payments", "patch": {"a": 3}}, {"service": "ledger", "patch": {"a": 3}}]}`},
		{"GET", "/api/v1/deployments/shop", ""},
		{"POST", "/api/v1/deployments/shop/flip", `{}`},
		{"GET", "/api/v1/events", ""},
	} {
		if resp := h.do(tt.method, tt.path, tt.body, team...); resp.status != http.StatusForbidden {
			t.Fatalf("team %s %s = %d, want 403", tt.method, tt.path, resp.status)
		}
	}
	var list ServiceList
	h.do("GET", "/api/v1/services", "", team...).decode(t, &list)
	if len(list.Services) != 1 || list.Services[0].Name != "payments" {
		t.Fatalf("team list = %+v, want payments only", list)
	}
	if v := h.serviceVersion("ledger"); v != 1 {
		t.Fatalf("ledger at %d, want 1", v)
	}
	if _, err := loadTokens(writeTokens(t, "x operator "+HashToken("t")+" teams=a\n")); err == nil || !strings.Contains(err.Error(), "services=") {
		t.Fatalf("bad scope field: %v, want an error asking for services=", err)
	}
}

func TestChangeSetUnknown(t *testing.T) {
	h := newHarness(t, nil)
	for _, tt := range []struct{ method, path, body string }{
		{"GET", "/api/v1/changesets/01764441480123456789-a1b2c3d4", ""},
		{"POST", "/api/v1/changesets/01764441480123456789-a1b2c3d4/revert", `{"reason": "x"}`},
	} {
		resp := h.do(tt.method, tt.path, tt.body)
		if resp.status != http.StatusNotFound || resp.errorBody(t).Field != "id" {
			t.Fatalf("%s %s = %d %s, want 404 on id", tt.method, tt.path, resp.status, resp.body)
		}
	}
	if resp := h.do("GET", "/api/v1/changesets/not_an_id", ""); resp.status != http.StatusBadRequest || resp.errorBody(t).Field != "id" {
		t.Fatalf("bad id = %d %s, want 400 on id", resp.status, resp.body)
	}
}
