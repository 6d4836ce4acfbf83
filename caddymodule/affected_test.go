package caddymodule

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/caddyserver/caddy/v2/caddyconfig"

	"github.com/a8e2c47e/switchback/admin"
	"github.com/a8e2c47e/switchback/internal/testharness"
	"github.com/a8e2c47e/switchback/internal/testharness/caddytest"
	"github.com/a8e2c47e/switchback/internal/testharness/etcdtest"
	"github.com/a8e2c47e/switchback/release"
)

// send makes one request through the gateway as user and returns the
// status the client got.
func send(t *testing.T, base, method, path, user, requestID string) int {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, base+path, strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-User-ID", user)
	if requestID != "" {
		req.Header.Set("X-Request-ID", requestID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// localAffected is what the gateway's own admin API holds of a release.
func localAffected(t *testing.T, adminURL, id string) admin.Affected {
	t.Helper()
	c, err := admin.NewClient(adminURL, "")
	if err != nil {
		t.Fatal(err)
	}
	a, err := c.Affected(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestAffectedRecordsWhatTheReleaseServed: a release shipped to green
// that raised flag new_cart records the non-read requests green served
// and those of new_cart's cohort on blue; reads, and requests of neither,
// are not recorded; the ring drops the oldest and counts them; once the
// release is rolled back nothing more is recorded, and what was recorded
// stays readable.
func TestAffectedRecordsWhatTheReleaseServed(t *testing.T) {
	e := etcdtest.Start(t)
	store := e.Store(t)
	ups := testharness.StartBackends(t)
	aport := testharness.FreePort(t)
	adminURL := fmt.Sprintf("http://127.0.0.1:%d", aport)
	base := caddytest.Start(t, fmt.Sprintf("switchback {\n\t\tstore etcd %s\n\t\tadmin 127.0.0.1:%d\n\t\tinstance gw-a\n\t\tstate_dir %s\n\t\taffected_capacity 6\n\t}",
		e.Endpoint(), aport, t.TempDir()), fmt.Sprintf(`
	switchback checkout {
		pool blue %s
		pool green %s
		weights blue 50 green 50
		flag new_cart 50
		sticky header X-User-ID
	}`, testharness.HostPort(ups.Blue), testharness.HostPort(ups.Green)))

	// Users by what serves them: green; blue with new_cart; blue without.
	var onGreen, onCohort, neither string
	for i := 0; onGreen == "" || onCohort == "" || neither == ""; i++ {
		user := fmt.Sprint("u", i)
		e, _ := get(t, &http.Client{}, base+"/", map[string]string{"X-User-ID": user})
		switch {
		case e.Pool == "green" && onGreen == "":
			onGreen = user
		case e.Pool == "blue" && e.Switchback.Flags == "new_cart" && onCohort == "":
			onCohort = user
		case e.Pool == "blue" && e.Switchback.Flags == "" && neither == "":
			neither = user
		}
	}

	rel, _, err := store.CreateRelease(t.Context(), release.Release{Name: "v2", Deployment: "checkout", Pool: "green",
		Before: release.State{Flags: map[string]float64{"new_cart": 10}}})
	if err != nil {
		t.Fatal(err)
	}
	testharness.WaitFor(t, "gw-a to record the release", func() bool {
		a := localAffected(t, adminURL, rel.ID)
		return len(a.Instances) == 1 && a.Instances[0].Recorded
	})

	type sent struct{ method, path, user, requestID string }
	recorded := []sent{
		{"POST", "/orders", onGreen, "req-green"},
		{"DELETE", "/orders/7", onCohort, "req-cohort"},
		{"PATCH", "/cart", onGreen, ""}, // gets Caddy's UUID
	}
	notRecorded := []sent{
		{"GET", "/orders", onGreen, "get"}, {"HEAD", "/", onGreen, "head"}, {"OPTIONS", "/", onCohort, "options"},
		{"POST", "/orders", neither, "neither"},
	}
	statuses := map[string]int{}
	for _, s := range append(slices.Clone(recorded), notRecorded...) {
		statuses[s.requestID] = send(t, base, s.method, s.path, s.user, s.requestID)
	}
	a := localAffected(t, adminURL, rel.ID)
	if len(a.Entries) != len(recorded) {
		t.Fatalf("%d entries, want %d: %+v", len(a.Entries), len(recorded), a.Entries)
	}
	for i, want := range recorded {
		got := a.Entries[i]
		if got.Instance != "gw-a" || got.Method != want.method || got.Path != want.path || got.Subject != want.user || got.Status != statuses[want.requestID] {
			t.Errorf("entry %d = %+v, want %+v with status %d", i, got, want, statuses[want.requestID])
		}
		if want.requestID != "" && got.RequestID != want.requestID {
			t.Errorf("entry %d request id %q, want the client's %q", i, got.RequestID, want.requestID)
		}
	}
	if e := a.Entries[2]; len(e.RequestID) != 36 || e.Pool != "green" {
		t.Errorf("entry without X-Request-ID: request id %q (want Caddy's UUID), pool %q", e.RequestID, e.Pool)
	}
	if e := a.Entries[1]; e.Pool != "blue" || e.Flags != "new_cart" {
		t.Errorf("cohort entry: pool %q flags %q, want blue and new_cart", e.Pool, e.Flags)
	}

	// The ring holds 6: five more make 8, so the two oldest are dropped.
	for i := range 5 {
		send(t, base, "PUT", fmt.Sprint("/items/", i), onGreen, fmt.Sprint("put-", i))
	}
	a = localAffected(t, adminURL, rel.ID)
	if len(a.Entries) != 6 || a.Dropped != 2 || a.Instances[0].Dropped != 2 ||
		a.Entries[0].Method != "PATCH" || a.Entries[5].RequestID != "put-4" || a.Instances[0].DroppedUntil.IsZero() {
		t.Fatalf("after overflow: %d entries, %d dropped, instances %+v; want 6 (PATCH to put-4) and 2", len(a.Entries), a.Dropped, a.Instances)
	}

	// Rolled back: recording stops; what it recorded stays.
	got, rev, err := store.GetRelease(t.Context(), rel.ID)
	if err != nil {
		t.Fatal(err)
	}
	got.Status = release.RolledBack
	if _, err := store.PutRelease(t.Context(), got, rev); err != nil {
		t.Fatal(err)
	}
	testharness.WaitFor(t, "gw-a to stop recording", func() bool {
		return !localAffected(t, adminURL, rel.ID).Instances[0].Until.IsZero()
	})
	send(t, base, "POST", "/orders", onGreen, "after-rollback")
	a = localAffected(t, adminURL, rel.ID)
	if len(a.Entries) != 6 || a.Entries[5].RequestID != "put-4" || a.Status != release.RolledBack {
		t.Errorf("after the rollback: %+v; want the same 6 entries", a.Entries)
	}

	// An unknown release is a 404 naming it.
	c, _ := admin.NewClient(adminURL, "")
	_, err = c.Affected(t.Context(), "r-20991231-000000-beef")
	var ae *admin.APIError
	if !errors.As(err, &ae) || ae.Status != http.StatusNotFound || !strings.Contains(ae.Message, `"r-20991231-000000-beef"`) || ae.Field != "id" {
		t.Errorf("unknown release: %v", err)
	}
}

// TestAffectedCaddyfile: admin_url and affected_capacity adapt into the
// app; bad values are refused with the line and what is accepted.
func TestAffectedCaddyfile(t *testing.T) {
	const site = ":8080 {\n\tswitchback checkout {\n\t\tpool blue 127.0.0.1:1\n\t\tpool green 127.0.0.1:2\n\t}\n}\n"
	global := func(lines string) string { return "{\n\tswitchback {\n\t\t" + lines + "\n\t}\n}\n" + site }
	tests := []struct {
		name, lines string
		want        []string
	}{
		{"capacity not a number", "affected_capacity lots", []string{`affected_capacity "lots"`, "1 or more", "Caddyfile:3"}},
		{"capacity zero", "affected_capacity 0", []string{`affected_capacity "0"`, "Caddyfile:3"}},
		{"admin_url without scheme", "admin_url 10.0.0.5:9180", []string{`admin_url "10.0.0.5:9180"`, "http://host:port", "Caddyfile:3"}},
		{"admin_url with a path", "admin_url http://10.0.0.5:9180/api", []string{`admin_url "http://10.0.0.5:9180/api"`, "Caddyfile:3"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { wantAdaptError(t, global(tt.lines), tt.want) })
	}
	out, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(global("admin_url https://gw-a.internal:9180\n\t\taffected_capacity 5000")),
		map[string]any{"filename": "Caddyfile"})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"admin_url":"https://gw-a.internal:9180"`, `"affected_capacity":5000`} {
		if !strings.Contains(string(out), want) {
			t.Errorf("adapted config lacks %s:\n%s", want, out)
		}
	}
}

func TestAdvertisedAdmin(t *testing.T) {
	tests := []struct {
		addr string
		want func(string) bool
	}{
		{"127.0.0.1:9180", func(u string) bool { return u == "http://127.0.0.1:9180" }},
		{"[::1]:9180", func(u string) bool { return u == "http://[::1]:9180" }},
		{"0.0.0.0:9180", func(u string) bool {
			return strings.HasPrefix(u, "http://") && strings.HasSuffix(u, ":9180") && !strings.Contains(u, "0.0.0.0") && checkAdminURL(u) == nil
		}},
	}
	for _, tt := range tests {
		addr, err := net.ResolveTCPAddr("tcp", tt.addr)
		if err != nil {
			t.Fatal(err)
		}
		if got := advertisedAdmin(addr); !tt.want(got) {
			t.Errorf("advertisedAdmin(%s) = %q", tt.addr, got)
		}
	}
}

// TestAffectedRecordsFailedProxying: a write the proxy could not complete
// may still have reached the upstream, so it is recorded, with the status
// the gateway answered.
func TestAffectedRecordsFailedProxying(t *testing.T) {
	e := etcdtest.Start(t)
	store := e.Store(t)
	ups := testharness.StartBackends(t)
	aport := testharness.FreePort(t)
	adminURL := fmt.Sprintf("http://127.0.0.1:%d", aport)
	base := caddytest.Start(t, fmt.Sprintf("switchback {\n\t\tstore etcd %s\n\t\tadmin 127.0.0.1:%d\n\t\tinstance gw-a\n\t\tstate_dir %s\n\t}",
		e.Endpoint(), aport, t.TempDir()), fmt.Sprintf(`
	switchback checkout {
		pool blue %s
		pool green 127.0.0.1:%d
		live green
		sticky header X-User-ID
	}`, testharness.HostPort(ups.Blue), testharness.FreePort(t)))
	rel, _, err := store.CreateRelease(t.Context(), release.Release{Name: "v2", Deployment: "checkout", Pool: "green"})
	if err != nil {
		t.Fatal(err)
	}
	testharness.WaitFor(t, "gw-a to record the release", func() bool {
		a := localAffected(t, adminURL, rel.ID)
		return len(a.Instances) == 1 && a.Instances[0].Recorded
	})
	if got := send(t, base, "POST", "/orders", "alice", "req-1"); got != http.StatusBadGateway {
		t.Fatalf("POST to a pool that is down: %d, want 502", got)
	}
	a := localAffected(t, adminURL, rel.ID)
	if len(a.Entries) != 1 || a.Entries[0].Status != http.StatusBadGateway || a.Entries[0].RequestID != "req-1" {
		t.Errorf("entries %+v, want the POST with status 502", a.Entries)
	}
}

// TestAffectedEntriesKeepLittle: an entry keeps a bounded copy of what a
// client sent, so a client's longest URLs or cookies cannot make the
// recording hold their requests.
func TestAffectedEntriesKeepLittle(t *testing.T) {
	long := "/" + strings.Repeat("é", 4000)
	got := kept(long, 1024)
	if len(got) > 1024 || !strings.HasPrefix(long, got) || !utf8.ValidString(got) {
		t.Fatalf("kept(%d bytes, 1024) = %d bytes, valid UTF-8 %v", len(long), len(got), utf8.ValidString(got))
	}
	short := "/orders"
	if got := kept(short, 1024); got != short {
		t.Fatalf("kept(%q) = %q", short, got)
	}
}
