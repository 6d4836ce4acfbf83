// Package etcdtest runs real etcd servers inside the test process, through
// configstore: the only package that may import etcd, so tests of other
// packages reach etcd here and never import it.
//
// One shared etcd serves the tests that only read and write documents
// (NewStore, each test under a key prefix of its own); a test that stops,
// restarts or partitions etcd starts one of its own (Start). configstore's
// own internal tests cannot import this package (it imports configstore)
// and start theirs with configstore.StartEmbedded.
package etcdtest

import (
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/a8e2c47e/switchback/configstore"
	"github.com/a8e2c47e/switchback/internal/testharness"
)

// shared is the etcd NewStore uses, started by the first test that asks
// and stopped by Run.
var shared struct {
	mu      sync.Mutex // protects the fields below
	running bool       // Run is in charge of stopping it
	dir     string
	etcd    *configstore.Embedded
	err     error
}

// Run runs the tests and then stops the shared etcd, if a test started it.
// A package whose tests call NewStore has
//
//	func TestMain(m *testing.M) { os.Exit(etcdtest.Run(m)) }
func Run(m *testing.M) int {
	shared.mu.Lock()
	shared.running = true
	shared.mu.Unlock()
	code := m.Run()
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.etcd != nil {
		if err := shared.etcd.Close(); err != nil {
			os.Stderr.WriteString("etcdtest: stop the shared etcd: " + err.Error() + "\n")
		}
	}
	if shared.dir != "" {
		os.RemoveAll(shared.dir)
	}
	return code
}

func sharedEtcd(t testing.TB) *configstore.Embedded {
	t.Helper()
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if !shared.running {
		t.Fatal("etcdtest.NewStore needs the package's TestMain to call etcdtest.Run, which stops the shared etcd")
	}
	if shared.etcd == nil && shared.err == nil {
		shared.dir, shared.err = os.MkdirTemp("", "switchback-etcdtest-")
		if shared.err == nil {
			shared.etcd, shared.err = configstore.StartEmbedded(shared.dir, "127.0.0.1:0")
		}
	}
	if shared.err != nil {
		t.Fatalf("shared etcd: %v", shared.err)
	}
	return shared.etcd
}

// NewStore returns a Store on the shared etcd, under a key prefix no other
// test uses, closed when the test ends. opts come after the prefix.
func NewStore(t testing.TB, opts ...configstore.Option) *configstore.Store {
	t.Helper()
	s, err := configstore.Dial(configstore.DialConfig{Embedded: sharedEtcd(t), Prefix: testharness.Prefix(t)}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// Dial returns a Store on the etcd at endpoint (http://host:port) with the
// default key prefix, as a gateway's, closed when the test ends.
func Dial(t testing.TB, endpoint string, opts ...configstore.Option) *configstore.Store {
	t.Helper()
	s, err := configstore.Dial(configstore.DialConfig{Endpoints: []string{endpoint}}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// Etcd is an etcd of one test's own, which the test can stop and start
// again on the same data and address.
type Etcd struct {
	dir, addr string
	e         *configstore.Embedded // nil while stopped
}

// Start starts an etcd on a free loopback port; it stops when the test
// ends.
func Start(t testing.TB) *Etcd {
	t.Helper()
	e := &Etcd{dir: t.TempDir(), addr: "127.0.0.1:0"}
	e.Start(t)
	e.addr = strings.TrimPrefix(e.e.Endpoints()[0], "http://")
	t.Cleanup(func() { e.Stop(t) })
	return e
}

// Start starts a stopped etcd again, on the same data and address.
func (e *Etcd) Start(t testing.TB) {
	t.Helper()
	if e.e != nil {
		t.Fatal("etcdtest: Start of a running etcd")
	}
	var err error
	if e.e, err = configstore.StartEmbedded(e.dir, e.addr); err != nil {
		t.Fatal(err)
	}
}

// Stop stops the etcd; a stopped one is left alone.
func (e *Etcd) Stop(t testing.TB) {
	t.Helper()
	if e.e == nil {
		return
	}
	if err := e.e.Close(); err != nil {
		t.Error(err)
	}
	e.e = nil
}

// Endpoint is the etcd's client URL: http://127.0.0.1:port.
func (e *Etcd) Endpoint() string { return "http://" + e.addr }

// Dir is the etcd's data directory.
func (e *Etcd) Dir() string { return e.dir }

// Store returns a Store on this etcd with the default key prefix, as a
// gateway's, closed when the test ends.
func (e *Etcd) Store(t testing.TB, opts ...configstore.Option) *configstore.Store {
	t.Helper()
	return Dial(t, e.Endpoint(), opts...)
}
