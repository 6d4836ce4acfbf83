package configstore

import (
	"context"
	"os"
	"sync"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/a8e2c47e/switchback/gateway"
	"github.com/a8e2c47e/switchback/internal/testharness"
)

// shared is one etcd for the tests that do not stop or compact it; each
// test keeps its keys under its own prefix.
var shared struct {
	once   sync.Once
	dir    string
	etcd   *Embedded
	client *clientv3.Client
	err    error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if shared.client != nil {
		shared.client.Close()
	}
	if shared.etcd != nil {
		shared.etcd.Close()
	}
	if shared.dir != "" {
		os.RemoveAll(shared.dir)
	}
	os.Exit(code)
}

func sharedClient(t testing.TB) *clientv3.Client {
	t.Helper()
	shared.once.Do(func() {
		shared.dir, shared.err = os.MkdirTemp("", "configstore-etcd-")
		if shared.err != nil {
			return
		}
		if shared.etcd, shared.err = StartEmbedded(shared.dir, "127.0.0.1:0"); shared.err != nil {
			return
		}
		shared.client, shared.err = shared.etcd.Client()
	})
	if shared.err != nil {
		t.Fatalf("shared etcd: %v", shared.err)
	}
	return shared.client
}

// newStore returns a Store on the shared etcd under a prefix of its own.
func newStore(t testing.TB, opts ...Option) *Store {
	t.Helper()
	s, err := New(sharedClient(t), append([]Option{WithPrefix(testharness.Prefix(t))}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// startEtcd starts an etcd of the test's own, in dir (a new temporary
// directory when empty), and returns it with a client.
func startEtcd(t testing.TB, dir, addr string) (*Embedded, *clientv3.Client) {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	e, err := StartEmbedded(dir, addr)
	if err != nil {
		t.Fatal(err)
	}
	c, err := e.Client()
	if err != nil {
		e.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Close()
		e.Close()
	})
	return e, c
}

func testConfig(name string) gateway.Config {
	return gateway.Config{
		Name: name,
		Pools: map[string]gateway.Pool{
			"blue":  {Upstreams: []string{"127.0.0.1:9001"}, Release: "v1"},
			"green": {Upstreams: []string{"127.0.0.1:9002"}, Release: "v2"},
		},
		Weights: map[string]float64{"blue": 100, "green": 0},
	}
}

func testMeta(reason string) Meta {
	return Meta{Author: "alice", Reason: reason, Source: SourceAPI}
}

// bootstrap writes testConfig(name) as version 1.
func bootstrap(t testing.TB, s *Store, name string) Document {
	t.Helper()
	doc, created, err := s.Bootstrap(t.Context(), testConfig(name), Meta{Author: "test", Source: SourceBootstrap})
	if err != nil || !created {
		t.Fatalf("Bootstrap(%s) = created %v, %v; want created", name, created, err)
	}
	return doc
}

// wrote fails the test unless a write succeeded and wrote a version, and
// returns that version: wrote(t)(s.Update(...)).
func wrote(t testing.TB) func(Result, error) Document {
	return func(res Result, err error) Document {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		if !res.Wrote {
			t.Fatalf("wrote nothing; current is version %d", res.Doc.Meta.Version)
		}
		return res.Doc
	}
}

// setWeights returns a mutation giving green the weight g and blue the rest.
func setWeights(g float64) func(*gateway.Config) error {
	return func(c *gateway.Config) error {
		c.Weights = map[string]float64{"blue": 100 - g, "green": g}
		return nil
	}
}

// recorder collects what a Watch delivers.
type recorder struct {
	mu       sync.Mutex
	versions map[string][]uint64 // deployment → versions applied, in order
	docs     map[string]Document // deployment → last document
	healthy  []bool              // every health report
	lastErr  error
}

func newRecorder() *recorder {
	return &recorder{versions: make(map[string][]uint64), docs: make(map[string]Document)}
}

func (r *recorder) apply(d Document) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.versions[d.Config.Name] = append(r.versions[d.Config.Name], d.Meta.Version)
	r.docs[d.Config.Name] = d
}

func (r *recorder) health(ok bool, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.healthy = append(r.healthy, ok)
	if err != nil {
		r.lastErr = err
	}
}

func (r *recorder) seen(name string) []uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]uint64(nil), r.versions[name]...)
}

func (r *recorder) last(name string) uint64 {
	v := r.seen(name)
	if len(v) == 0 {
		return 0
	}
	return v[len(v)-1]
}

// isHealthy reports the last health report, and whether there was one.
func (r *recorder) isHealthy() (healthy, reported bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.healthy) == 0 {
		return false, false
	}
	return r.healthy[len(r.healthy)-1], true
}

// watch runs s.Watch into a new recorder until the test ends.
func watch(t testing.TB, s *Store) *recorder {
	t.Helper()
	r, stop := watchUntil(t, s)
	t.Cleanup(stop)
	return r
}

// watchUntil runs s.Watch into a new recorder until stop is called.
func watchUntil(t testing.TB, s *Store) (*recorder, func()) {
	t.Helper()
	r := newRecorder()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Watch(ctx, r.apply, r.health) }()
	var once sync.Once
	return r, func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != context.Canceled {
				t.Errorf("Watch returned %v, want context.Canceled", err)
			}
		})
	}
}
