package admin

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/a8e2c47e/switchback/configstore"
)

func TestEventsList(t *testing.T) {
	h := newHarness(t, nil)
	for _, kind := range []string{"fallback", "flag_off"} {
		if _, err := h.store.AppendEvent(t.Context(), configstore.Event{Deployment: "shop", Kind: kind, Instance: "i", Reason: "r"}); err != nil {
			t.Fatal(err)
		}
	}
	var got eventsList
	h.do("GET", "/api/v1/events?deployment=shop&limit=10", "").decode(t, &got)
	if len(got.Events) != 2 || got.Events[0].Kind != "flag_off" || got.Events[1].Kind != "fallback" {
		t.Errorf("events %+v, want flag_off then fallback (newest first)", got.Events)
	}
	for _, bad := range []struct{ query, field string }{
		{"?limit=0", "limit"}, {"?limit=x", "limit"}, {"?deployment=a%20b", "deployment"}, {"?follow=maybe", "follow"},
	} {
		r := h.do("GET", "/api/v1/events"+bad.query, "")
		if r.status != http.StatusBadRequest || r.errorBody(t).Field != bad.field {
			t.Errorf("GET /api/v1/events%s: %d %s; want 400 on %s", bad.query, r.status, r.body, bad.field)
		}
	}
}

// TestEventsFollow: the stream sends the recent events, then every new one,
// with none lost between the two.
func TestEventsFollow(t *testing.T) {
	h := newHarness(t, nil)
	if _, err := h.store.AppendEvent(t.Context(), configstore.Event{Deployment: "shop", Kind: "fallback", Instance: "i", Reason: "before"}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, h.srv.URL+"/api/v1/events?follow=1&deployment=shop", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("content type %q", ct)
	}
	lines := bufio.NewScanner(resp.Body)
	next := func() configstore.Event {
		t.Helper()
		for lines.Scan() {
			if data, ok := strings.CutPrefix(lines.Text(), "data: "); ok {
				var ev configstore.Event
				if err := json.Unmarshal([]byte(data), &ev); err != nil {
					t.Fatalf("event data %q: %v", data, err)
				}
				return ev
			}
		}
		t.Fatalf("stream ended: %v", lines.Err())
		return configstore.Event{}
	}
	if ev := next(); ev.Reason != "before" {
		t.Fatalf("first event %+v, want the recent one", ev)
	}
	for _, reason := range []string{"after-1", "after-2"} {
		if _, err := h.store.AppendEvent(t.Context(), configstore.Event{Deployment: "shop", Kind: "fallback", Instance: "i", Reason: reason}); err != nil {
			t.Fatal(err)
		}
		if ev := next(); ev.Reason != reason {
			t.Fatalf("streamed %+v, want %s", ev, reason)
		}
	}
}
