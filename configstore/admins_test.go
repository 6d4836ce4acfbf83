package configstore

import (
	"errors"
	"maps"
	"testing"

	"github.com/a8e2c47e/switchback/gateway"
	"github.com/a8e2c47e/switchback/internal/testharness"
)

// TestAdmins: each instance's admin URL lives under its lease: listed
// while it lives, written again when the lease is lost, gone on Close; a
// URL that is not one is refused.
func TestAdmins(t *testing.T) {
	t.Parallel()
	a, b := newStore(t), newStore(t)
	b.prefix = a.prefix
	ctx := t.Context()
	if err := a.PublishAdmin(ctx, "gw-a", "http://127.0.0.1:9180"); err != nil {
		t.Fatal(err)
	}
	if err := b.PublishAdmin(ctx, "gw-b", "https://gw-b.internal:9180/"); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"gw-a": "http://127.0.0.1:9180", "gw-b": "https://gw-b.internal:9180/"}
	if got, err := a.Admins(ctx); err != nil || !maps.Equal(got, want) {
		t.Fatalf("Admins = %v, %v; want %v", got, err, want)
	}

	// The lease is lost (etcd was away longer than its TTL): the keeper
	// takes a new one and writes the URL again.
	a.lease.mu.Lock()
	id := a.lease.id
	a.lease.mu.Unlock()
	if _, err := a.client.Revoke(ctx, id); err != nil {
		t.Fatal(err)
	}
	testharness.WaitFor(t, "gw-a's admin URL written again under a new lease", func() bool {
		got, err := b.Admins(ctx)
		a.lease.mu.Lock()
		renewed := a.lease.id != 0 && a.lease.id != id
		a.lease.mu.Unlock()
		return err == nil && renewed && got["gw-a"] == want["gw-a"]
	})

	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if got, err := a.Admins(ctx); err != nil || !maps.Equal(got, map[string]string{"gw-a": want["gw-a"]}) {
		t.Errorf("after gw-b closed: Admins = %v, %v; want gw-a's only", got, err)
	}

	for _, bad := range []string{"127.0.0.1:9180", "ftp://x:1", "http://x:1/api", "http://"} {
		var fe *gateway.FieldError
		if err := a.PublishAdmin(ctx, "gw-a", bad); !errors.As(err, &fe) || fe.Field != "admin_url" {
			t.Errorf("PublishAdmin(%q) = %v; want a FieldError naming admin_url", bad, err)
		}
	}
}
