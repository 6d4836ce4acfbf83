package caddymodule

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"testing"

	"github.com/a8e2c47e/switchback/internal/testharness"
	"github.com/a8e2c47e/switchback/internal/testharness/caddytest"
)

// BenchmarkProxy compares, in one Caddy, a request through plain
// reverse_proxy, through reverse_proxy setting three static headers (what
// switchback adds to every request), and through switchback, all to the
// same backend (client, gateway and backend share the process).
func BenchmarkProxy(b *testing.B) {
	up := testharness.StartBackend(b, "blue", "v1")
	rp, rph, sb := testharness.FreePort(b), testharness.FreePort(b), testharness.FreePort(b)
	caddytest.Run(b, fmt.Sprintf(`{
	admin off
	auto_https off
	persist_config off
}
http://127.0.0.1:%d {
	reverse_proxy %s
}
http://127.0.0.1:%d {
	reverse_proxy %s {
		header_up X-Switchback-Pool blue
		header_up X-Switchback-Version 1
		header_up X-Switchback-Flags f2
	}
}
http://127.0.0.1:%d {
	switchback bench {
		pool blue %s
		pool green %s
		weights blue 50 green 50
		sticky header X-User-ID
		flag f1 10
		flag f2 50
	}
}`, rp, testharness.HostPort(up), rph, testharness.HostPort(up), sb, testharness.HostPort(up), testharness.HostPort(up)))
	for _, tt := range []struct {
		name string
		port int
	}{{"reverse_proxy", rp}, {"reverse_proxy+3_headers", rph}, {"switchback", sb}} {
		b.Run(tt.name, func(b *testing.B) {
			c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 8}}
			url := fmt.Sprintf("http://127.0.0.1:%d/", tt.port)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				req, _ := http.NewRequest(http.MethodGet, url, nil)
				req.Header.Set("X-User-ID", strconv.Itoa(i))
				i++
				resp, err := c.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					b.Fatalf("status %d", resp.StatusCode)
				}
			}
		})
	}
}
