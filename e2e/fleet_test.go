package e2e

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/a8e2c47e/switchback/guard"
	"github.com/a8e2c47e/switchback/internal/testharness"
	"github.com/a8e2c47e/switchback/internal/testharness/etcdtest"
)

// fleetGuard needs more green samples (40 in 4 s) than one of three
// instances sees at 30 req/s split evenly (about 20), and fewer than the
// three see together (about 60).
const fleetGuard = `weights blue 50 green 50
		guard {
			error_rate 5%
			window 4s
			min_requests 40
		}`

// spread sends rps requests a second, round robin over the gateways, until
// the test ends (at most 60 s), and counts them.
func spread(t testing.TB, rps int, gws ...*gateway) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	var wg sync.WaitGroup
	wg.Go(func() {
		c := &http.Client{Timeout: 5 * time.Second}
		tick := time.NewTicker(time.Second / time.Duration(rps))
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, gws[i%len(gws)].base+"/", nil)
			req.Header.Set("X-User-ID", fmt.Sprintf("u%d", i%10000))
			if resp, err := c.Do(req); err == nil {
				resp.Body.Close()
			}
		}
	})
	t.Cleanup(func() { cancel(); wg.Wait() })
}

// TestFleetJudgesTogether: three gateways, each seeing a third of the
// traffic, judge by their merged windows: a pool whose traffic no single
// instance has min_requests of is judged, and falls back; an instance
// whose summary stops coming is left out and named.
func TestFleetJudgesTogether(t *testing.T) {
	e := etcdtest.Start(t)
	b := testharness.StartBackends(t)
	health := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	t.Cleanup(health.Close)
	site := deployment(b, strings.Replace(fleetGuard, "min_requests 40",
		"min_requests 40\n\t\t\tcriterion payments http "+health.URL+" status 200 interval 200ms", 1))
	gws := []*gateway{startGateway(t, "gw-a", e, site, ""), startGateway(t, "gw-b", e, site, ""), startGateway(t, "gw-c", e, site, "")}
	spread(t, 30, gws...)

	view := func(g *gateway) guard.View {
		v, err := g.admin(t).Guard(t.Context(), "checkout")
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	var v guard.View
	testharness.WaitFor(t, "gw-a to judge by all three instances' windows", func() bool {
		v = view(gws[0])
		return slices.Equal(v.Fleet, []string{"gw-b", "gw-c"}) && v.Pools["green"].Requests >= 40
	})

	// The elected instance probes the criterion; every /guard shows it.
	for _, g := range gws {
		testharness.WaitFor(t, g.name+" to show the criterion", func() bool {
			return view(g).Criteria["payments"].Value == http.StatusOK
		})
	}

	testharness.SetFault(t, b.Green.URL, `{"error_rate": 1}`)
	store := e.Store(t)
	testharness.WaitFor(t, "the fleet to take green off traffic", func() bool {
		doc, err := store.Get(t.Context(), "checkout")
		return err == nil && doc.Config.Weights["green"] == 0
	})

	// gw-c stops publishing (frozen; its lease outlives the test's wait).
	if err := gws[2].cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = gws[2].cmd.Process.Signal(syscall.SIGCONT) })
	testharness.WaitFor(t, "gw-a to leave gw-c out and name it", func() bool {
		v = view(gws[0])
		_, named := v.LeftOut["gw-c"]
		return named && slices.Equal(v.Fleet, []string{"gw-b"})
	})
	if err := gws[2].cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkFleetFallback measures the time from a fault on green (every
// response a 500) to the fallback version in the store, for 60 req/s
// split 50/50: one instance seeing all of it, and three instances each
// seeing a third, judging together (fleet on, the default) or each alone
// (fleet off); at the default min_requests (20) and at 200, more than
// one instance alone ever has in its window (about 100). A run without
// a fallback within 20 s reports fell_back 0.
func BenchmarkFleetFallback(b *testing.B) {
	// fallbackBound is how long a run waits for the fallback.
	const fallbackBound = 20 * time.Second
	const rps = 60
	for _, minReq := range []int{20, 200} {
		for _, mode := range []struct {
			name      string
			instances int
			global    string
		}{
			{"one_instance", 1, ""},
			{"three_fleet", 3, ""},
			{"three_alone", 3, "fleet off"},
		} {
			b.Run(fmt.Sprintf("min_requests=%d/%s", minReq, mode.name), func(b *testing.B) {
				for b.Loop() {
					e := etcdtest.Start(b)
					bk := testharness.StartBackends(b)
					site := deployment(bk, fmt.Sprintf(`weights blue 50 green 50
		guard {
			error_rate 5%%
			baseline 2x
			min_requests %d
		}`, minReq))
					var gws []*gateway
					for i := range mode.instances {
						gws = append(gws, startGatewayWith(b, fmt.Sprintf("gw-%d", i), e, site, "", mode.global))
					}
					spread(b, rps, gws...)
					// A full window of healthy traffic first: the baseline.
					time.Sleep(10 * time.Second)
					store := e.Store(b)
					faultAt := time.Now()
					testharness.SetFault(b, bk.Green.URL, `{"error_rate": 1}`)
					// Each instance alone may never have min_requests: then
					// there is no fallback, reported as fell_back 0.
					fell := 0.0
					for deadline := faultAt.Add(fallbackBound); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
						doc, err := store.Get(context.Background(), "checkout")
						if err == nil && doc.Config.Weights["green"] == 0 {
							fell = 1
							break
						}
					}
					b.ReportMetric(float64(time.Since(faultAt).Milliseconds()), "ms_to_fallback")
					b.ReportMetric(fell, "fell_back")
					// The store traffic: one summary per instance per second.
					if sums, err := store.Summaries(context.Background()); err == nil {
						largest := 0
						for _, v := range sums {
							largest = max(largest, len(v))
						}
						b.ReportMetric(float64(largest), "summary_bytes")
					}
					b.ReportMetric(float64(mode.instances), "instances")
				}
			})
		}
	}
}
