package caddymodule

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/a8e2c47e/switchback/internal/testharness"
	"github.com/a8e2c47e/switchback/internal/testharness/caddytest"
)

// upgradeEcho is an upstream that accepts a connection upgrade and then
// echoes every line, prefixed with its pool: a stand-in for a WebSocket.
func upgradeEcho(t *testing.T, pool string) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "echo" {
			http.Error(w, "want Upgrade: echo", http.StatusBadRequest)
			return
		}
		conn, rw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		fmt.Fprint(rw, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
		rw.Flush()
		for {
			line, err := rw.ReadString('\n')
			if err != nil {
				return
			}
			fmt.Fprintf(rw, "%s:%s", pool, line)
			rw.Flush()
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

// TestUpgradedConnectionSurvivesFlip: a flip swaps the snapshot, not the
// pools' proxies, so an open upgraded connection (a WebSocket) keeps
// talking to its upstream while new requests go to the other pool.
func TestUpgradedConnectionSurvivesFlip(t *testing.T) {
	blue, green := upgradeEcho(t, "blue"), upgradeEcho(t, "green")
	base := caddytest.Start(t, "", fmt.Sprintf(`
	switchback checkout {
		pool blue %s
		pool green %s
		live blue
	}`, testharness.HostPort(blue), testharness.HostPort(green)))

	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	host := strings.TrimPrefix(base, "http://")
	fmt.Fprintf(conn, "GET / HTTP/1.1\r\nHost: %s\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n", host)
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	echo := func(msg string) string {
		t.Helper()
		if _, err := io.WriteString(conn, msg+"\n"); err != nil {
			t.Fatalf("write on the upgraded connection: %v", err)
		}
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("read on the upgraded connection: %v", err)
		}
		return strings.TrimSpace(line)
	}
	if got := echo("before"); got != "blue:before" {
		t.Fatalf("echo = %q, want blue:before", got)
	}

	dep, _ := LookupDeployment("checkout")
	cfg := dep.Snapshot().Config()
	cfg.Version++
	cfg.Weights = map[string]float64{"blue": 0, "green": 100}
	if _, err := dep.Apply(cfg); err != nil {
		t.Fatal(err)
	}
	if got := echo("after"); got != "blue:after" {
		t.Errorf("after the flip the open connection answers %q, want blue:after", got)
	}
	// A new connection goes to green.
	c2, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	fmt.Fprintf(c2, "GET / HTTP/1.1\r\nHost: %s\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\nhello\n", host)
	br2 := bufio.NewReader(c2)
	if resp, err := http.ReadResponse(br2, nil); err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("second upgrade: %v %v", resp, err)
	}
	if line, _ := br2.ReadString('\n'); strings.TrimSpace(line) != "green:hello" {
		t.Errorf("new connection answered %q, want green:hello", line)
	}
}

// TestTrailersStripped: X-Switchback-* sent as request trailers, declared
// or not, never reach the upstream.
func TestTrailersStripped(t *testing.T) {
	got := make(chan http.Header, 2)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		got <- r.Trailer.Clone()
	}))
	t.Cleanup(up.Close)
	base := caddytest.Start(t, "", fmt.Sprintf(`
	switchback checkout {
		pool blue %s
		pool green %s
		live blue
	}`, testharness.HostPort(up), testharness.HostPort(up)))
	host := strings.TrimPrefix(base, "http://")
	for _, declared := range []string{"Trailer: X-Switchback-Pool, X-Other\r\n", ""} {
		conn, err := net.Dial("tcp", host)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(conn, "POST / HTTP/1.1\r\nHost: %s\r\nTransfer-Encoding: chunked\r\n%s\r\n"+
			"5\r\nhello\r\n0\r\nX-Switchback-Pool: green\r\nX-Other: kept\r\n\r\n", host, declared)
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		conn.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("declared %q: %v %v", declared, resp, err)
		}
		tr := <-got
		if v := tr.Get("X-Switchback-Pool"); v != "" {
			t.Errorf("declared %q: upstream got trailer X-Switchback-Pool %q", declared, v)
		}
		if declared != "" && tr.Get("X-Other") != "kept" {
			t.Errorf("declared %q: other trailers lost: %v", declared, tr)
		}
	}
}
