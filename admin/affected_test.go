package admin

import (
	"encoding/csv"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/a8e2c47e/switchback/affected"
	"github.com/a8e2c47e/switchback/release"
)

// TestAffectedMergesInstances: two admin APIs on one store, each with the
// entries its gateway recorded; either answers with both, sorted by time,
// asking the other with the caller's token; an instance serving the
// deployment that cannot be asked is listed as missing, not left out.
func TestAffectedMergesInstances(t *testing.T) {
	tokens := tokensFile(t)
	at := func(s int) time.Time { return testNow.Add(time.Duration(s) * time.Second) }
	logs := map[string]affected.Log{
		"host-a": {Capacity: 3, Since: at(0), Dropped: 2, DroppedUntil: at(2), Entries: []affected.Entry{
			{Time: at(3), Subject: "u1", Method: "POST", Path: "/orders", Status: 201, RequestID: "ra3", Pool: "green"},
			{Time: at(5), Subject: "u2", Method: "DELETE", Path: "/orders/7", Status: 204, RequestID: "ra5", Pool: "green", Flags: "new-cart,x"},
		}},
		"host-b": {Capacity: 3, Since: at(1), Entries: []affected.Entry{
			{Time: at(4), Subject: "u3", Method: "PUT", Path: "/cart", Status: 500, RequestID: "rb4", Pool: "green"},
		}},
	}
	var rel release.Release
	mod := func(instance string) func(*Options) {
		return func(o *Options) {
			o.Instance = instance
			o.Tokens = tokens
			o.Affected = func(deployment, id string) (affected.Log, bool) {
				l, ok := logs[instance]
				return l, ok && deployment == "shop" && id == rel.ID
			}
		}
	}
	a := newHarness(t, mod("host-a"))
	b := newHarnessOn(t, a.store, mod("host-b"))
	ctx := t.Context()
	var err error
	if rel, _, err = a.store.CreateRelease(ctx, release.Release{Name: "v2", Deployment: "shop", Pool: "green"}); err != nil {
		t.Fatal(err)
	}
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedURL := "http://" + closed.Addr().String()
	closed.Close()
	for inst, url := range map[string]string{"host-a": a.srv.URL, "host-b": b.srv.URL, "host-c": closedURL, "host-d": ""} {
		if err := a.store.ReportApplied(ctx, inst, "shop", 1); err != nil {
			t.Fatal(err)
		}
		if url != "" {
			if err := a.store.PublishAdmin(ctx, inst, url); err != nil {
				t.Fatal(err)
			}
		}
	}
	// An instance serving another deployment only is not asked.
	if err := a.store.ReportApplied(ctx, "host-e", "other", 1); err != nil {
		t.Fatal(err)
	}

	auth := []string{"Authorization", "Bearer " + viewerToken}
	for _, via := range []*harness{a, b} {
		for _, ref := range []string{rel.ID, "v2"} {
			resp := via.do(http.MethodGet, "/api/v1/releases/"+ref+"/affected", "", auth...)
			if resp.status != http.StatusOK {
				t.Fatalf("via %s: %d %s", via.server.instance, resp.status, resp.body)
			}
			var got Affected
			resp.decode(t, &got)
			var order []string
			for _, e := range got.Entries {
				order = append(order, e.Instance+":"+e.RequestID)
			}
			if want := []string{"host-a:ra3", "host-b:rb4", "host-a:ra5"}; !slices.Equal(order, want) {
				t.Errorf("via %s, %s: entries %v, want %v", via.server.instance, ref, order, want)
			}
			if e := got.Entries[2]; e.Subject != "u2" || e.Method != "DELETE" || e.Path != "/orders/7" || e.Status != 204 || e.Flags != "new-cart,x" {
				t.Errorf("entry %+v lost fields", e)
			}
			if got.Release != rel.ID || got.Name != "v2" || got.Deployment != "shop" || got.Dropped != 2 {
				t.Errorf("header %+v", got)
			}
			if len(got.Instances) != 2 || got.Instances[0].Instance != "host-a" || got.Instances[0].Dropped != 2 ||
				!got.Instances[0].DroppedUntil.Equal(at(2)) || got.Instances[1].Instance != "host-b" || !got.Instances[1].Since.Equal(at(1)) {
				t.Errorf("instances %+v", got.Instances)
			}
			var missing []string
			for _, m := range got.Missing {
				missing = append(missing, m.Instance)
			}
			if !slices.Equal(missing, []string{"host-c", "host-d"}) || !strings.Contains(got.Missing[0].Error, closedURL) ||
				!strings.Contains(got.Missing[1].Error, "no admin API") {
				t.Errorf("missing %+v, want host-c (not answering) and host-d (no admin URL)", got.Missing)
			}
		}
	}

	// CSV: a header row, the same rows, and per-instance drops in a header.
	resp := a.do(http.MethodGet, "/api/v1/releases/"+rel.ID+"/affected?format=csv", "", auth...)
	if resp.status != http.StatusOK || !strings.HasPrefix(resp.header.Get("Content-Type"), "text/csv") {
		t.Fatalf("csv: %d %s %s", resp.status, resp.header.Get("Content-Type"), resp.body)
	}
	rows, err := csv.NewReader(strings.NewReader(string(resp.body))).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	want := [][]string{
		affectedCSVHeader,
		{at(3).Format(time.RFC3339Nano), "host-a", "u1", "POST", "/orders", "201", "ra3", "green", ""},
		{at(4).Format(time.RFC3339Nano), "host-b", "u3", "PUT", "/cart", "500", "rb4", "green", ""},
		{at(5).Format(time.RFC3339Nano), "host-a", "u2", "DELETE", "/orders/7", "204", "ra5", "green", "new-cart,x"},
	}
	if !slices.EqualFunc(rows, want, slices.Equal) {
		t.Errorf("csv rows\n%q\nwant\n%q", rows, want)
	}
	if got := resp.header.Get("X-Switchback-Dropped"); got != "host-a=2, host-b=0" {
		t.Errorf("X-Switchback-Dropped %q", got)
	}
	if got := resp.header.Get("X-Switchback-Missing"); got != "host-c, host-d" {
		t.Errorf("X-Switchback-Missing %q", got)
	}

	// local=1 is this instance's alone.
	var local Affected
	a.do(http.MethodGet, "/api/v1/releases/"+rel.ID+"/affected?local=1", "", auth...).decode(t, &local)
	if len(local.Entries) != 2 || len(local.Instances) != 1 || local.Instances[0].Instance != "host-a" || len(local.Missing) != 0 {
		t.Errorf("local answer %+v", local)
	}

	// Without a token, nothing (and no peer is asked on the caller's behalf).
	if resp := a.do(http.MethodGet, "/api/v1/releases/"+rel.ID+"/affected", ""); resp.status != http.StatusUnauthorized {
		t.Errorf("without a token: %d", resp.status)
	}
}

func TestAffectedBadInput(t *testing.T) {
	h := newHarness(t, nil)
	rel, _, err := h.store.CreateRelease(t.Context(), release.Release{Name: "v2", Deployment: "shop", Pool: "green"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		path   string
		status int
		field  string
		says   string
	}{
		{"/api/v1/releases/r-20991231-235959-dead/affected", http.StatusNotFound, "id", `release "r-20991231-235959-dead" not found`},
		{"/api/v1/releases/nope/affected", http.StatusNotFound, "id", `release "nope" not found`},
		{"/api/v1/releases/" + rel.ID + "/affected?format=xml", http.StatusBadRequest, "format", `format "xml": want json or csv`},
		{"/api/v1/releases/" + rel.ID + "/affected?local=yes", http.StatusBadRequest, "local", `local "yes"`},
	}
	for _, tt := range tests {
		resp := h.do(http.MethodGet, tt.path, "")
		e := resp.errorBody(t)
		if resp.status != tt.status || e.Field != tt.field || !strings.Contains(e.Error, tt.says) {
			t.Errorf("GET %s: %d %+v; want %d, field %s, saying %s", tt.path, resp.status, e, tt.status, tt.field, tt.says)
		}
	}
	// A release nobody recorded: an empty list, this instance listed as
	// not having recorded it.
	var got Affected
	h.do(http.MethodGet, "/api/v1/releases/"+rel.ID+"/affected?local=1", "").decode(t, &got)
	if len(got.Entries) != 0 || len(got.Instances) != 1 || got.Instances[0].Recorded {
		t.Errorf("unrecorded release: %+v", got)
	}
}
