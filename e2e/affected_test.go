package e2e

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/a8e2c47e/switchback/admin"
	"github.com/a8e2c47e/switchback/internal/testharness"
	"github.com/a8e2c47e/switchback/internal/testharness/etcdtest"
	"github.com/a8e2c47e/switchback/release"
)

// TestAffectedMergedAcrossInstances: two gateways on one etcd serve a
// release's pool; the requests other than reads sent through either are
// in the list any of them answers, merged by time, asked of each other
// with the caller's token; reads are not; an instance that stops
// answering is listed as missing.
func TestAffectedMergedAcrossInstances(t *testing.T) {
	e := etcdtest.Start(t)
	b := testharness.StartBackends(t)
	tokens := filepath.Join(t.TempDir(), "tokens")
	const token = "blast-radius-viewer"
	if err := os.WriteFile(tokens, []byte("oncall viewer "+admin.HashToken(token)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	site := deployment(b, "live green")
	global := "admin_tokens " + tokens
	gws := []*gateway{startGatewayWith(t, "gw-a", e, site, "", global), startGatewayWith(t, "gw-b", e, site, "", global)}
	store := e.Store(t)
	rel, _, err := store.CreateRelease(t.Context(), release.Release{Name: "v2", Deployment: "checkout", Pool: "green"})
	if err != nil {
		t.Fatal(err)
	}
	client := func(g *gateway) *admin.Client {
		c, err := admin.NewClient(g.adminURL, token)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	testharness.WaitFor(t, "both instances to record the release", func() bool {
		a, err := client(gws[0]).Affected(t.Context(), rel.ID)
		return err == nil && len(a.Missing) == 0 && len(a.Instances) == 2 && a.Instances[0].Recorded && a.Instances[1].Recorded
	})

	type req struct {
		via          *gateway
		method, path string
		user, id     string
	}
	reqs := []req{
		{gws[0], "POST", "/orders", "alice", "req-1"},
		{gws[1], "GET", "/orders", "bob", "read-1"},
		{gws[1], "PUT", "/cart/3", "bob", "req-2"},
		{gws[0], "HEAD", "/", "carol", "read-2"},
		{gws[0], "DELETE", "/orders/9", "carol", "req-3"},
	}
	statuses := map[string]int{}
	for _, r := range reqs {
		hr, err := http.NewRequestWithContext(t.Context(), r.method, r.via.base+r.path, strings.NewReader("{}"))
		if err != nil {
			t.Fatal(err)
		}
		hr.Header.Set("X-User-ID", r.user)
		hr.Header.Set("X-Request-ID", r.id)
		resp, err := http.DefaultClient.Do(hr)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		statuses[r.id] = resp.StatusCode
	}

	for _, via := range gws {
		a, err := client(via).Affected(t.Context(), "v2")
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, e := range a.Entries {
			got = append(got, fmt.Sprintf("%s %s %s %s %d %s %s", e.Instance, e.Subject, e.Method, e.Path, e.Status, e.RequestID, e.Pool))
		}
		want := []string{
			fmt.Sprintf("gw-a alice POST /orders %d req-1 green", statuses["req-1"]),
			fmt.Sprintf("gw-b bob PUT /cart/3 %d req-2 green", statuses["req-2"]),
			fmt.Sprintf("gw-a carol DELETE /orders/9 %d req-3 green", statuses["req-3"]),
		}
		if !slices.Equal(got, want) {
			t.Errorf("via %s: entries\n%s\nwant\n%s", via.name, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		if len(a.Instances) != 2 || a.Instances[0].Dropped != 0 || a.Instances[1].Dropped != 0 || len(a.Missing) != 0 {
			t.Errorf("via %s: instances %+v missing %+v", via.name, a.Instances, a.Missing)
		}
	}

	// The CLI's CSV: a header row, then the rows.
	cmd := cli(t, gws[1], "release", "affected", rel.ID, "--format", "csv", "--token", token)
	if !strings.HasPrefix(cmd, "time,instance,subject,method,path,status,request_id,pool,flags\n") || strings.Count(cmd, ",green,") != 3 {
		t.Errorf("release affected --format csv:\n%s", cmd)
	}

	// gw-b stops answering but is still live in the store (its lease has
	// not run out): it is listed as missing, and gw-a's entries are there.
	if err := gws[1].cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = gws[1].cmd.Process.Signal(syscall.SIGCONT) })
	a, err := client(gws[0]).Affected(t.Context(), rel.ID)
	if err != nil {
		t.Fatal(err)
	}
	_ = gws[1].cmd.Process.Signal(syscall.SIGCONT)
	if len(a.Missing) != 1 || a.Missing[0].Instance != "gw-b" || len(a.Entries) != 2 || len(a.Instances) != 1 {
		t.Errorf("with gw-b not answering: %d entries, instances %+v, missing %+v; want gw-a's 2 and gw-b missing", len(a.Entries), a.Instances, a.Missing)
	}
}
