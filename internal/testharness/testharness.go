// Package testharness holds what the tests of every package share: free
// loopback ports, a poll helper that says what it last saw, the example
// backend on 127.0.0.1, traffic to a gateway, a TCP relay that can cut
// connections as a network partition would, and the database servers the
// environment names.
//
// It imports no package of this module but examples/backend, so that the
// internal tests of any package, configstore's included, can use it without
// an import cycle. The real etcd is in etcdtest (through configstore, the
// only package that may import etcd) and the real Caddy server in
// caddytest, so that tests needing neither do not link them.
package testharness

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/a8e2c47e/switchback/examples/backend"
)

// Wait is how long WaitFor polls: far above what any condition takes on an
// idle machine, so that a loaded one (2 cores, -race, other tests) does not
// fail a test that is only slow.
const Wait = 20 * time.Second

// FreePort returns a loopback port that was free a moment ago, for a
// server that takes its address from a config file rather than a
// listener.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Eventually polls cond every 5 ms until it reports done, and fails the
// test after timeout with the state cond last described.
func Eventually(t testing.TB, timeout time.Duration, cond func() (done bool, state string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		done, state := cond()
		if done {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not done after %s: %s", timeout, state)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// WaitFor is Eventually for a condition that has nothing to say but what
// it waits for; it gives up after Wait.
func WaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	Eventually(t, Wait, func() (bool, string) { return cond(), "waiting for " + what })
}

// Backends are the example backend as a blue (release v1) and a green
// (release v2) pool, on loopback.
type Backends struct{ Blue, Green *httptest.Server }

// StartBackends starts both backends; they stop when the test ends.
func StartBackends(t testing.TB) Backends {
	t.Helper()
	return Backends{Blue: StartBackend(t, "blue", "v1"), Green: StartBackend(t, "green", "v2")}
}

// StartBackend starts one example backend answering as pool at release; it
// stops when the test ends.
func StartBackend(t testing.TB, pool, release string) *httptest.Server {
	t.Helper()
	s := httptest.NewServer(backend.New(pool, release))
	t.Cleanup(s.Close)
	return s
}

// HostPort is a test server's address as an upstream: host:port.
func HostPort(s *httptest.Server) string { return strings.TrimPrefix(s.URL, "http://") }

// SetFault sets an example backend's faults (its PUT /_fault body, such as
// {"error_rate": 1}), failing the test unless the backend accepts them.
func SetFault(t testing.TB, backendURL, body string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPut, backendURL+"/_fault", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT %s/_fault %s: %d", backendURL, body, resp.StatusCode)
	}
}

var prefixes atomic.Int64

// Prefix returns a key prefix no other test in this process uses, named
// after the test: /test/<name>-<n>.
func Prefix(t testing.TB) string {
	return fmt.Sprintf("/test/%s-%d", strings.ReplaceAll(t.Name(), "/", "_"), prefixes.Add(1))
}

// The database servers tests may use, named by the environment; a test
// needing one skips when it is unset.
const (
	PostgresEnv = "SWITCHBACK_TEST_POSTGRES"
	MySQLEnv    = "SWITCHBACK_TEST_MYSQL"
)

// databaseExamples are what .ci/run sets, for the skip message.
var databaseExamples = map[string]string{
	PostgresEnv: "postgres://postgres@127.0.0.1:5432/test?sslmode=disable",
	MySQLEnv:    "root@tcp(127.0.0.1:3306)/test",
}

// DatabaseURL returns the database server address in env (PostgresEnv or
// MySQLEnv), or skips the test, saying what to set.
func DatabaseURL(t testing.TB, env string) string {
	t.Helper()
	if u := os.Getenv(env); u != "" {
		return u
	}
	t.Skipf("%s unset: set it to a server address, such as %s, to run this test", env, databaseExamples[env])
	return ""
}

// Ask sends GET base/ as user (X-User-ID) and returns the example
// backend's answer: which pool served the user, under which version the
// gateway decided. Anything but a 200 with an echo is an error.
func Ask(ctx context.Context, base, user string) (backend.Echo, error) {
	var e backend.Echo
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/", nil)
	if err != nil {
		return e, err
	}
	req.Header.Set("X-User-ID", user)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return e, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return e, fmt.Errorf("GET %s/ as %s: status %d", base, user, resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(&e); err != nil {
		return e, fmt.Errorf("GET %s/ as %s: decode the echo: %w", base, user, err)
	}
	return e, nil
}
