package ofrep

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/a8e2c47e/switchback/gateway"
)

// deployments serves real gateway.Deployments and tells the server of each
// version the way the Caddy glue does: as a Binder.
type deployments struct {
	mu   sync.Mutex // protects deps
	deps map[string]*gateway.Deployment
}

func (d *deployments) Deployments() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var names []string
	for n := range d.deps {
		names = append(names, n)
	}
	return names
}

func (d *deployments) Snapshot(name string) (*gateway.Snapshot, bool) {
	d.mu.Lock()
	dep := d.deps[name]
	d.mu.Unlock()
	if dep == nil || dep.Snapshot() == nil {
		return nil, false
	}
	return dep.Snapshot(), true
}

type notifier struct{ s *Server }

func (n notifier) Prepare(snap *gateway.Snapshot) (func(), error) {
	return func() { n.s.Changed(snap) }, nil
}

func config(name string, version uint64, flags map[string]float64) gateway.Config {
	cfg := gateway.Config{
		Name:    name,
		Version: version,
		Pools: map[string]gateway.Pool{
			"blue":  {Upstreams: []string{"127.0.0.1:1"}},
			"green": {Upstreams: []string{"127.0.0.1:2"}},
		},
		Weights: map[string]float64{"blue": 90, "green": 10},
		Flags:   map[string]gateway.Flag{},
	}
	for f, pct := range flags {
		cfg.Flags[f] = gateway.Flag{Percent: pct}
	}
	return cfg
}

// harness is a Server over real deployments, on a real HTTP listener.
type harness struct {
	srv  *Server
	deps *deployments
	url  string
}

func newHarness(t testing.TB, opts Options, cfgs ...gateway.Config) *harness {
	t.Helper()
	h := &harness{deps: &deployments{deps: map[string]*gateway.Deployment{}}}
	opts.Source = h.deps
	srv, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	h.srv = srv
	for _, cfg := range cfgs {
		dep := gateway.NewDeployment(cfg.Name)
		if _, err := dep.Attach(notifier{srv}); err != nil {
			t.Fatal(err)
		}
		if _, err := dep.Apply(cfg); err != nil {
			t.Fatal(err)
		}
		h.deps.deps[cfg.Name] = dep
	}
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	t.Cleanup(srv.Close) // runs first: open streams end, so ts.Close does not wait
	h.url = ts.URL
	return h
}

func (h *harness) apply(t testing.TB, cfg gateway.Config) {
	t.Helper()
	if _, err := h.deps.deps[cfg.Name].Apply(cfg); err != nil {
		t.Fatal(err)
	}
}

type evaluation struct {
	Key          string         `json:"key"`
	Value        *bool          `json:"value"`
	Reason       string         `json:"reason"`
	Variant      string         `json:"variant"`
	Metadata     map[string]any `json:"metadata"`
	ErrorCode    string         `json:"errorCode"`
	ErrorDetails string         `json:"errorDetails"`
}

type bulkAnswer struct {
	Flags        []evaluation   `json:"flags"`
	Metadata     map[string]any `json:"metadata"`
	EventStreams []struct {
		Type     string `json:"type"`
		Endpoint struct {
			RequestURI string `json:"requestUri"`
		} `json:"endpoint"`
	} `json:"eventStreams"`
	ErrorCode    string `json:"errorCode"`
	ErrorDetails string `json:"errorDetails"`
}

func post(t testing.TB, url, body string, hdr map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

func ctxBody(subject string) string {
	return fmt.Sprintf(`{"context": {"targetingKey": %q, "plan": "pro"}}`, subject)
}

func TestAnswersAreTheGatewaysDecisions(t *testing.T) {
	cfg := config("checkout", 1, map[string]float64{"none": 0, "tenth": 10, "half": 50.5, "all": 100})
	h := newHarness(t, Options{}, cfg)
	snap, _ := h.deps.Snapshot("checkout")
	names := snap.FlagNames()
	reasons := map[string]string{"none": ReasonStatic, "tenth": ReasonSplit, "half": ReasonSplit, "all": ReasonStatic}
	on := map[string]int{}
	const subjects = 2000
	for n := range subjects {
		subject := fmt.Sprintf("user-%d", n)
		want := snap.Decide(subject)
		_, b := post(t, h.url+PathEvaluate, ctxBody(subject), nil)
		var bulk bulkAnswer
		if err := json.Unmarshal(b, &bulk); err != nil {
			t.Fatalf("bulk %s: %v", b, err)
		}
		if len(bulk.Flags) != len(names) {
			t.Fatalf("bulk has %d flags, want %d: %s", len(bulk.Flags), len(names), b)
		}
		for i, f := range names {
			wantOn := want.Flags&(1<<i) != 0
			got := bulk.Flags[i]
			if got.Key != f || got.Value == nil || *got.Value != wantOn || got.Reason != reasons[f] {
				t.Fatalf("subject %s flag %s: got %+v, want value %v reason %s", subject, f, got, wantOn, reasons[f])
			}
			if wantOn {
				on[f]++
			}
		}
		if n%10 != 0 {
			continue
		}
		f := names[n%len(names)]
		resp, b := post(t, h.url+PathEvaluate+"/"+f, ctxBody(subject), nil)
		var got evaluation
		if err := json.Unmarshal(b, &got); err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("single %s: %d %s %v", f, resp.StatusCode, b, err)
		}
		wantVariant := "off"
		if want.Flags&(1<<(n%len(names))) != 0 {
			wantVariant = "on"
		}
		if got.Variant != wantVariant || got.Metadata["version"] != 1.0 || got.Metadata["deployment"] != "checkout" {
			t.Fatalf("single %s for %s: got %+v, want variant %s, version 1", f, subject, got, wantVariant)
		}
	}
	if on["none"] != 0 || on["all"] != subjects || on["tenth"] < subjects/20 || on["tenth"] > subjects/5 {
		t.Errorf("share on: %v of %d subjects", on, subjects)
	}
}

func TestErrorShapes(t *testing.T) {
	h := newHarness(t, Options{}, config("checkout", 1, map[string]float64{"dark_mode": 10}))
	tests := []struct {
		name, path, body string
		status           int
		code             string
		key              bool
	}{
		{"bad JSON", "/dark_mode", `{"context": `, 400, CodeParseError, true},
		{"empty body", "/dark_mode", ``, 400, CodeParseError, true},
		{"no context", "/dark_mode", `{}`, 400, CodeTargetingKeyMissing, true},
		{"no targeting key", "/dark_mode", `{"context": {"plan": "pro"}}`, 400, CodeTargetingKeyMissing, true},
		{"empty targeting key", "/dark_mode", `{"context": {"targetingKey": ""}}`, 400, CodeTargetingKeyMissing, true},
		{"targeting key not a string", "/dark_mode", `{"context": {"targetingKey": 42}}`, 400, CodeInvalidContext, true},
		{"unknown deployment", "/dark_mode", `{"context": {"targetingKey": "u", "deployment": "nope"}}`, 400, CodeInvalidContext, true},
		{"unknown flag", "/nope", ctxBody("u"), 404, CodeFlagNotFound, true},
		{"bulk bad JSON", "", `[`, 400, CodeParseError, false},
		{"bulk no targeting key", "", `{"context": {}}`, 400, CodeTargetingKeyMissing, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, b := post(t, h.url+PathEvaluate+tt.path, tt.body, nil)
			var got map[string]any
			if err := json.Unmarshal(b, &got); err != nil {
				t.Fatalf("%s: %v", b, err)
			}
			if resp.StatusCode != tt.status || got["errorCode"] != tt.code || got["errorDetails"] == "" {
				t.Errorf("got %d %s, want %d %s with details", resp.StatusCode, b, tt.status, tt.code)
			}
			if _, hasKey := got["key"]; hasKey != tt.key {
				t.Errorf("key present %v, want %v: %s", hasKey, tt.key, b)
			}
			if tt.key && tt.path != "" && got["key"] != strings.TrimPrefix(tt.path, "/") {
				t.Errorf("key %v, want %s", got["key"], tt.path[1:])
			}
		})
	}
	resp, err := http.Get(h.url + PathEvaluate)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != http.MethodPost {
		t.Errorf("GET: %d Allow %q, want 405 Allow POST", resp.StatusCode, resp.Header.Get("Allow"))
	}
}

func TestReasonsFollowTheFlagsHistory(t *testing.T) {
	h := newHarness(t, Options{}, config("checkout", 1, map[string]float64{"declared": 0, "beta": 0}))
	reason := func(flag string) string {
		t.Helper()
		_, b := post(t, h.url+PathEvaluate+"/"+flag, ctxBody("alice"), nil)
		var got evaluation
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatal(err)
		}
		return got.Reason
	}
	steps := []struct {
		beta float64
		want string
	}{
		{0, ReasonStatic},   // declared, never rolled out
		{20, ReasonSplit},   // rolling out
		{100, ReasonStatic}, // everyone
		{0, ReasonDisabled}, // killed
		{0.01, ReasonSplit}, // back on
		{0, ReasonDisabled}, // killed again
	}
	for i, st := range steps {
		if i > 0 {
			h.apply(t, config("checkout", uint64(i+1), map[string]float64{"declared": 0, "beta": st.beta}))
		}
		if got := reason("beta"); got != st.want {
			t.Errorf("version %d, beta at %v%%: reason %s, want %s", i+1, st.beta, got, st.want)
		}
		if got := reason("declared"); got != ReasonStatic {
			t.Errorf("version %d: declared flag reason %s, want STATIC", i+1, got)
		}
	}
}

func TestSeenFromHistory(t *testing.T) {
	h := newHarness(t, Options{}, config("checkout", 7, map[string]float64{"beta": 0, "declared": 0}))
	h.srv.Seen("checkout", "beta") // above 0% in version 5, say
	for flag, want := range map[string]string{"beta": ReasonDisabled, "declared": ReasonStatic} {
		_, b := post(t, h.url+PathEvaluate+"/"+flag, ctxBody("alice"), nil)
		var got evaluation
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatal(err)
		}
		if got.Reason != want {
			t.Errorf("%s: reason %s, want %s", flag, got.Reason, want)
		}
	}
}

// During a Deployment's commit the Source still returns the version
// before, while the event stream already says refetch: the refetch must
// read the new version.
func TestAnswersWithTheCommittedVersion(t *testing.T) {
	h := newHarness(t, Options{}, config("checkout", 1, map[string]float64{"a": 100}))
	next, err := gateway.Compile(config("checkout", 2, map[string]float64{"a": 0}))
	if err != nil {
		t.Fatal(err)
	}
	h.srv.Changed(next) // as a binder's commit does, before the Deployment stores it
	_, b := post(t, h.url+PathEvaluate+"/a", ctxBody("alice"), nil)
	var got evaluation
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if got.Metadata["version"] != 2.0 || got.Reason != ReasonDisabled {
		t.Errorf("got %+v, want version 2, DISABLED", got)
	}
}

func TestBulkETagAndNotModified(t *testing.T) {
	h := newHarness(t, Options{}, config("checkout", 1, map[string]float64{"a": 50, "b": 10}))
	resp, first := post(t, h.url+PathEvaluate, ctxBody("alice"), nil)
	tag := resp.Header.Get("ETag")
	if resp.StatusCode != 200 || len(tag) < 3 || tag[0] != '"' {
		t.Fatalf("got %d ETag %q", resp.StatusCode, tag)
	}
	resp, b := post(t, h.url+PathEvaluate, ctxBody("alice"), map[string]string{"If-None-Match": tag})
	if resp.StatusCode != http.StatusNotModified || len(b) != 0 || resp.Header.Get("ETag") != tag {
		t.Errorf("same tag: got %d %q ETag %q, want 304 without body", resp.StatusCode, b, resp.Header.Get("ETag"))
	}
	resp, _ = post(t, h.url+PathEvaluate, ctxBody("alice"), map[string]string{"If-None-Match": `"other", W/` + tag})
	if resp.StatusCode != http.StatusNotModified {
		t.Errorf("tag in a list, weak: got %d, want 304", resp.StatusCode)
	}
	// The tag is the answer's: another subject with other flags on does
	// not match it.
	snap, _ := h.deps.Snapshot("checkout")
	other := "bob"
	for n := 0; snap.Decide(other).Flags == snap.Decide("alice").Flags; n++ {
		other = fmt.Sprintf("bob-%d", n)
	}
	resp, _ = post(t, h.url+PathEvaluate, ctxBody(other), map[string]string{"If-None-Match": tag})
	if resp.StatusCode != http.StatusOK || resp.Header.Get("ETag") == tag {
		t.Errorf("%s with alice's tag: got %d ETag %q, want 200 and its own tag", other, resp.StatusCode, resp.Header.Get("ETag"))
	}
	h.apply(t, config("checkout", 2, map[string]float64{"a": 50, "b": 10}))
	resp, second := post(t, h.url+PathEvaluate, ctxBody("alice"), map[string]string{"If-None-Match": tag})
	if resp.StatusCode != http.StatusOK || resp.Header.Get("ETag") == tag || string(second) == string(first) {
		t.Errorf("after a new version: got %d ETag %q (old %q), want 200 and a new tag", resp.StatusCode, resp.Header.Get("ETag"), tag)
	}
}

// stream opens the event stream and returns its events, one per receive.
func stream(t *testing.T, url string, hdr map[string]string) (<-chan string, *http.Response) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != http.StatusOK {
		return nil, resp
	}
	events := make(chan string, 16)
	go func() {
		defer close(events)
		sc := bufio.NewScanner(resp.Body)
		var ev strings.Builder
		for sc.Scan() {
			line := sc.Text()
			if line != "" {
				ev.WriteString(line + "\n")
				continue
			}
			if strings.Contains(ev.String(), "data:") {
				events <- ev.String()
			}
			ev.Reset()
		}
	}()
	return events, resp
}

func next(t *testing.T, events <-chan string) string {
	t.Helper()
	select {
	case ev := <-events:
		return ev
	case <-time.After(10 * time.Second):
		t.Fatal("no event within 10s")
		return ""
	}
}

func TestEventStreamSaysRefetch(t *testing.T) {
	h := newHarness(t, Options{}, config("checkout", 1, map[string]float64{"a": 50}))
	_, b := post(t, h.url+PathEvaluate, ctxBody("alice"), nil)
	var bulk bulkAnswer
	if err := json.Unmarshal(b, &bulk); err != nil {
		t.Fatal(err)
	}
	if len(bulk.EventStreams) != 1 || bulk.EventStreams[0].Type != "sse" || !strings.HasPrefix(bulk.EventStreams[0].Endpoint.RequestURI, PathEvents+"?") {
		t.Fatalf("eventStreams: %+v", bulk.EventStreams)
	}
	events, _ := stream(t, h.url+bulk.EventStreams[0].Endpoint.RequestURI, nil)
	h.apply(t, config("checkout", 2, map[string]float64{"a": 0}))
	ev := next(t, events)
	if !strings.Contains(ev, "id: 2\n") || !strings.Contains(ev, `"type":"refetchEvaluation"`) {
		t.Errorf("event %q, want id 2 and a refetchEvaluation", ev)
	}

	// A client reconnecting after missing version 3 hears of it at once.
	h.apply(t, config("checkout", 3, map[string]float64{"a": 10}))
	again, _ := stream(t, h.url+bulk.EventStreams[0].Endpoint.RequestURI, map[string]string{"Last-Event-ID": "2"})
	if ev := next(t, again); !strings.Contains(ev, "id: 3\n") {
		t.Errorf("after reconnect: event %q, want id 3", ev)
	}
}

// tokens is a fixed set of flags tokens.
type tokens map[string]Principal

func (ts tokens) Lookup(token string) (Principal, bool) { p, ok := ts[token]; return p, ok }
func (ts tokens) Named(name string) (Principal, bool) {
	for _, p := range ts {
		if p.Name == name {
			return p, true
		}
	}
	return Principal{}, false
}

func TestTokensAndDeploymentChoice(t *testing.T) {
	toks := tokens{
		"s3cret":  {Name: "web"},
		"shopkey": {Name: "shop", Deployment: "checkout"},
	}
	h := newHarness(t, Options{Tokens: toks},
		config("checkout", 1, map[string]float64{"a": 100}),
		config("search", 4, map[string]float64{"b": 100}))
	tests := []struct {
		name   string
		hdr    map[string]string
		body   string
		status int
		want   string // deployment answering, or errorCode
	}{
		{"no token", nil, ctxBody("u"), 401, ""},
		{"unknown token", map[string]string{"Authorization": "Bearer nope"}, ctxBody("u"), 401, ""},
		{"two deployments, none named", map[string]string{"Authorization": "Bearer s3cret"}, ctxBody("u"), 400, CodeInvalidContext},
		{"named in context", map[string]string{"X-API-Key": "s3cret"}, `{"context": {"targetingKey": "u", "deployment": "search"}}`, 200, "search"},
		{"token default", map[string]string{"Authorization": "bearer shopkey"}, ctxBody("u"), 200, "checkout"},
		{"context beats token default", map[string]string{"X-API-Key": "shopkey"}, `{"context": {"targetingKey": "u", "deployment": "search"}}`, 200, "search"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, b := post(t, h.url+PathEvaluate, tt.body, tt.hdr)
			if resp.StatusCode != tt.status {
				t.Fatalf("got %d %s, want %d", resp.StatusCode, b, tt.status)
			}
			var got bulkAnswer
			if err := json.Unmarshal(b, &got); err != nil {
				t.Fatal(err)
			}
			switch {
			case tt.status == 200 && got.Metadata["deployment"] != tt.want:
				t.Errorf("answered by %v, want %s", got.Metadata["deployment"], tt.want)
			case tt.status == 400 && got.ErrorCode != tt.want:
				t.Errorf("errorCode %s, want %s", got.ErrorCode, tt.want)
			case tt.status == 401 && (resp.Header.Get("WWW-Authenticate") == "" || got.ErrorDetails == ""):
				t.Errorf("401 without WWW-Authenticate or details: %s", b)
			}
		})
	}

	// The stream address of a bulk answer works without headers, as
	// EventSource sends none; altered, it does not.
	_, b := post(t, h.url+PathEvaluate, ctxBody("u"), map[string]string{"X-API-Key": "shopkey"})
	var bulk bulkAnswer
	if err := json.Unmarshal(b, &bulk); err != nil || len(bulk.EventStreams) != 1 {
		t.Fatalf("%s: %v", b, err)
	}
	uri := bulk.EventStreams[0].Endpoint.RequestURI
	events, resp := stream(t, h.url+uri, nil)
	if events == nil {
		t.Fatalf("signed stream: %d", resp.StatusCode)
	}
	h.apply(t, config("checkout", 2, map[string]float64{"a": 0}))
	if ev := next(t, events); !strings.Contains(ev, "id: 2\n") {
		t.Errorf("event %q, want id 2", ev)
	}
	for _, bad := range []string{
		strings.Replace(uri, "deployment=checkout", "deployment=search", 1),
		strings.Replace(uri, "token=shop", "token=web", 1),
		uri[:len(uri)-1],
	} {
		if _, resp := stream(t, h.url+bad, nil); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s: got %d, want 401", bad, resp.StatusCode)
		}
	}
}

func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	h := newHarness(t, Options{Registerer: reg, Tokens: tokens{"s3cret": {Name: "web"}}}, config("checkout", 1, map[string]float64{"a": 50}))
	auth := map[string]string{"X-API-Key": "s3cret"}
	post(t, h.url+PathEvaluate+"/a", ctxBody("u"), auth)
	post(t, h.url+PathEvaluate+"/nope", ctxBody("u"), auth)
	post(t, h.url+PathEvaluate+"/a", ctxBody("u"), nil)
	resp, _ := post(t, h.url+PathEvaluate, ctxBody("u"), auth)
	post(t, h.url+PathEvaluate, ctxBody("u"), map[string]string{"X-API-Key": "s3cret", "If-None-Match": resp.Header.Get("ETag")})
	post(t, h.url+PathEvaluate, `{`, auth)
	tests := []struct {
		endpoint, outcome string
		want              float64
	}{
		{"single", "ok", 1},
		{"single", CodeFlagNotFound, 1},
		{"single", "unauthorized", 1},
		{"bulk", "ok", 1},
		{"bulk", "not_modified", 1},
		{"bulk", CodeParseError, 1},
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	counts := map[[2]string]float64{}
	for _, mf := range families {
		if mf.GetName() != "switchback_ofrep_requests_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			var key [2]string
			for _, l := range m.GetLabel() {
				switch l.GetName() {
				case "endpoint":
					key[0] = l.GetValue()
				case "outcome":
					key[1] = l.GetValue()
				}
			}
			counts[key] = m.GetCounter().GetValue()
		}
	}
	for _, tt := range tests {
		if got := counts[[2]string{tt.endpoint, tt.outcome}]; got != tt.want {
			t.Errorf("requests_total{%s,%s} = %v, want %v", tt.endpoint, tt.outcome, got, tt.want)
		}
	}
}

func TestLoopbackOnlyWithoutTokens(t *testing.T) {
	h := newHarness(t, Options{}, config("checkout", 1, map[string]float64{"a": 100}))
	req := httptest.NewRequest(http.MethodPost, PathEvaluate, strings.NewReader(ctxBody("u")))
	req.RemoteAddr = "192.0.2.7:4000"
	rec := httptest.NewRecorder()
	h.srv.ServeHTTP(rec, req)
	if rec.Code != http.StatusForbidden {
		t.Errorf("remote client without tokens: got %d, want 403", rec.Code)
	}
	tests := []struct {
		host   string
		status int
	}{
		{"localhost:8016", http.StatusOK},
		{"127.0.0.1:8016", http.StatusOK},
		{"[::1]:8016", http.StatusOK},
		{"evil.example:8016", http.StatusForbidden}, // DNS rebinding
	}
	for _, tt := range tests {
		req := httptest.NewRequest(http.MethodPost, PathEvaluate, strings.NewReader(ctxBody("u")))
		req.RemoteAddr = "127.0.0.1:4000"
		req.Host = tt.host
		rec := httptest.NewRecorder()
		h.srv.ServeHTTP(rec, req)
		if rec.Code != tt.status || rec.Header().Get("Access-Control-Allow-Origin") != "" {
			t.Errorf("Host %s: got %d, CORS %q; want %d and no CORS", tt.host, rec.Code, rec.Header().Get("Access-Control-Allow-Origin"), tt.status)
		}
	}
}

func TestCORSWithTokens(t *testing.T) {
	h := newHarness(t, Options{Tokens: tokens{"s3cret": {Name: "web"}}}, config("checkout", 1, map[string]float64{"a": 100}))
	req, _ := http.NewRequest(http.MethodOptions, h.url+PathEvaluate, nil)
	req.Header.Set("Origin", "https://shop.example")
	req.Header.Set("Access-Control-Request-Method", "POST")
	req.Header.Set("Access-Control-Request-Headers", "authorization, content-type")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent || resp.Header.Get("Access-Control-Allow-Origin") != "*" ||
		!strings.Contains(resp.Header.Get("Access-Control-Allow-Headers"), "Authorization") {
		t.Errorf("preflight: %d %v", resp.StatusCode, resp.Header)
	}
	resp, _ = post(t, h.url+PathEvaluate, ctxBody("u"), map[string]string{"Authorization": "Bearer s3cret", "Origin": "https://shop.example"})
	if resp.Header.Get("Access-Control-Allow-Origin") != "*" || resp.Header.Get("Access-Control-Expose-Headers") != "ETag" {
		t.Errorf("bulk answer: CORS headers %v", resp.Header)
	}
}
