package e2e

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/a8e2c47e/switchback/guard"
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
	e := startEtcd(t)
	b := startBackends(t)
	site := deployment(b, fleetGuard)
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
	waitFor(t, "gw-a to judge by all three instances' windows", func() bool {
		v = view(gws[0])
		return slices.Equal(v.Fleet, []string{"gw-b", "gw-c"}) && v.Pools["green"].Requests >= 40
	})

	setFault(t, b.green, `{"error_rate": 1}`)
	store := e.store(t)
	waitFor(t, "the fleet to take green off traffic", func() bool {
		doc, err := store.Get(t.Context(), "checkout")
		return err == nil && doc.Config.Weights["green"] == 0
	})

	// gw-c stops publishing (frozen; its lease outlives the test's wait).
	if err := gws[2].cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = gws[2].cmd.Process.Signal(syscall.SIGCONT) })
	waitFor(t, "gw-a to leave gw-c out and name it", func() bool {
		v = view(gws[0])
		_, named := v.LeftOut["gw-c"]
		return named && slices.Equal(v.Fleet, []string{"gw-b"})
	})
	if err := gws[2].cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
}
