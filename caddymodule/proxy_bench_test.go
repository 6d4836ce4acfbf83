package caddymodule

import "testing"

// BenchmarkProxy compares, in one Caddy, a request through plain
// reverse_proxy, through reverse_proxy carrying the three headers
// switchback sets (at no cost of their own), and through switchback with a
// header or cookie subject, a returning visitor or a first one, and 1 or 10
// flags. The backend and the client allocate nothing, so B/op and
// allocs/op are the gateway's alone; bench/benchtab prints the differences.
func BenchmarkProxy(b *testing.B) {
	be := startRawBackend(b)
	sites := append(append([]proxySite(nil), referenceSites...), append(switchbackSites(false), issuingSite)...)
	clients := startSites(b, be, "", sites)
	for _, s := range sites {
		b.Run(s.name, func(b *testing.B) {
			c := clients[s.name]
			b.ReportAllocs()
			for b.Loop() {
				if err := c.get(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
