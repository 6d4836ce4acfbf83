package caddymodule

import (
	"fmt"
	"testing"

	"github.com/a8e2c47e/switchback/internal/testharness"
	"github.com/a8e2c47e/switchback/internal/testharness/etcdtest"
	"github.com/a8e2c47e/switchback/release"
)

// TestAffectedGETsCostNothing: a GET through the real handler allocates
// exactly as much while a release records on its pool and flag as before,
// and records nothing.
func TestAffectedGETsCostNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Caddy and etcd")
	}
	if raceEnabled {
		t.Skip("the race detector changes what allocates; make bench runs this test without it")
	}
	be := startRawBackend(t)
	e := etcdtest.Start(t)
	store := e.Store(t)
	global := fmt.Sprintf("switchback {\n\t\tstore etcd %s\n\t\tadmin off\n\t\tstate_dir %s\n\t}", e.Endpoint(), t.TempDir())
	site := proxySite{name: "recorded", sticky: subjectHeader, block: switchbackSite("rec", "header X-User-ID", 1, ""), switchback: true}
	c := startSites(t, be, global, []proxySite{site})["recorded"]
	before := allocsPerRequest(t, c)

	rel, _, err := store.CreateRelease(t.Context(), release.Release{Name: "v2", Deployment: "rec", Pool: "green",
		Before: release.State{Flags: map[string]float64{"f0": 0}}})
	if err != nil {
		t.Fatal(err)
	}
	entry, ok := lookupEntry("rec")
	if !ok {
		t.Fatal("deployment rec not served")
	}
	testharness.WaitFor(t, "the release to record", func() bool { return entry.affected.Active() != nil })
	during := allocsPerRequest(t, c)
	t.Logf("GET: %.0f allocs/request before the release, %.0f while it records", before, during)
	if during > before {
		t.Errorf("GET while a release records: %.0f allocs/request, want %.0f as before", during, before)
	}
	if l, ok := entry.affected.Log(rel.ID); !ok || len(l.Entries) != 0 {
		t.Errorf("GETs recorded: %+v, %v", l, ok)
	}
}
