package admin

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/a8e2c47e/switchback/configstore"
	"github.com/a8e2c47e/switchback/gateway"
	"github.com/a8e2c47e/switchback/internal/testharness/etcdtest"
)

// Every test's store is on one shared etcd (etcdtest.NewStore), under a
// key prefix of its own, so tests cannot see each other's deployments.
func TestMain(m *testing.M) { os.Exit(etcdtest.Run(m)) }

func shopConfig() gateway.Config {
	return gateway.Config{
		Name: "shop",
		Pools: map[string]gateway.Pool{
			"blue":  {Upstreams: []string{"127.0.0.1:9001"}, Release: "v1.0.0"},
			"green": {Upstreams: []string{"127.0.0.1:9002"}, Release: "v1.1.0"},
		},
		Weights: map[string]float64{"blue": 100, "green": 0},
		Flags:   map[string]gateway.Flag{"new-cart": {Percent: 10}},
	}
}

func bootstrap(t *testing.T, s *configstore.Store, cfg gateway.Config) {
	t.Helper()
	if _, _, err := s.Bootstrap(t.Context(), cfg, configstore.Meta{Author: "test", Source: configstore.SourceBootstrap}); err != nil {
		t.Fatal(err)
	}
}

// auditLog collects audit records. The server calls Audit before it
// answers, so a record is there once its response has arrived.
type auditLog struct {
	mu   sync.Mutex
	recs []Record
}

func (a *auditLog) add(r Record) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.recs = append(a.recs, r)
}

func (a *auditLog) all() []Record {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]Record(nil), a.recs...)
}

func (a *auditLog) last(t *testing.T) Record {
	t.Helper()
	recs := a.all()
	if len(recs) == 0 {
		t.Fatal("no audit record")
	}
	return recs[len(recs)-1]
}

var testNow = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

type harness struct {
	t      *testing.T
	store  *configstore.Store
	server *Server
	srv    *httptest.Server
	audit  *auditLog
	reg    *prometheus.Registry
}

// newHarness serves a Server over real HTTP, with "shop" bootstrapped.
func newHarness(t *testing.T, mod func(*Options)) *harness {
	t.Helper()
	return newHarnessOn(t, etcdtest.NewStore(t), mod)
}

// newHarnessOn is newHarness on a given store.
func newHarnessOn(t *testing.T, store *configstore.Store, mod func(*Options)) *harness {
	t.Helper()
	h := &harness{t: t, store: store, audit: &auditLog{}, reg: prometheus.NewRegistry()}
	bootstrap(t, h.store, shopConfig())
	opts := Options{
		Store:    h.store,
		Instance: "host-a",
		Live:     func(string) (uint64, bool) { return 1, true },
		Registry: h.reg,
		Audit:    h.audit.add,
		Now:      func() time.Time { return testNow },
	}
	if mod != nil {
		mod(&opts)
	}
	s, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	h.server = s
	h.srv = httptest.NewServer(s)
	t.Cleanup(h.srv.Close)
	return h
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) decode(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
}

func (r response) errorBody(t *testing.T) errorBody {
	t.Helper()
	var e errorBody
	r.decode(t, &e)
	if e.Error == "" {
		t.Fatalf("error answer without a message: %s", r.body)
	}
	return e
}

// do sends one request; hdr are header name/value pairs. A request with a
// body gets Content-Type: application/json unless hdr sets one.
func (h *harness) do(method, path, body string, hdr ...string) response {
	h.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(h.t.Context(), method, h.srv.URL+path, rd)
	if err != nil {
		h.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		if strings.EqualFold(hdr[i], "Host") {
			req.Host = hdr[i+1]
			continue
		}
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := h.srv.Client().Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		h.t.Fatal(err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

// current reads a deployment back from the store, not through the API.
func (h *harness) current(name string) configstore.Document {
	h.t.Helper()
	doc, err := h.store.Get(h.t.Context(), name)
	if err != nil {
		h.t.Fatal(err)
	}
	return doc
}

func (h *harness) historyLen(name string) int {
	h.t.Helper()
	metas, err := h.store.History(h.t.Context(), name, 0)
	if err != nil {
		h.t.Fatal(err)
	}
	return len(metas)
}
