package configstore

import (
	"errors"
	"io/fs"
	"path/filepath"
	"testing"

	"github.com/a8e2c47e/switchback/gateway"
)

// TestDialEmbedded: Dial with a data directory starts an etcd the Store
// owns; Close stops it, so the directory can be used again at once.
func TestDialEmbedded(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for i := range 2 {
		s, err := Dial(DialConfig{DataDir: dir, ClientAddr: "127.0.0.1:0", Prefix: "/dial"})
		if err != nil {
			t.Fatalf("Dial #%d: %v", i+1, err)
		}
		if i == 0 {
			bootstrap(t, s, "shop")
		} else if v := currentVersion(t, s, "shop"); v != 1 {
			t.Errorf("after a restart on the same data: version %d, want 1", v)
		}
		if err := s.Close(); err != nil {
			t.Errorf("Close #%d: %v", i+1, err)
		}
	}
}

// TestDialShared: stores dialled on one running embedded etcd share it;
// closing one leaves the server to its owner and the other store working.
func TestDialShared(t *testing.T) {
	t.Parallel()
	e, err := StartEmbedded(t.TempDir(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	a, err := Dial(DialConfig{Embedded: e, Prefix: "/shared"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := Dial(DialConfig{Embedded: e, Prefix: "/shared"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	bootstrap(t, a, "shop")
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if v := currentVersion(t, b, "shop"); v != 1 {
		t.Errorf("the other store reads version %d, want 1", v)
	}
	// An external dial of the same server, by its endpoint, sees it too.
	c, err := Dial(DialConfig{Endpoints: e.Endpoints(), Prefix: "/shared"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if v := currentVersion(t, c, "shop"); v != 1 {
		t.Errorf("an external client reads version %d, want 1", v)
	}
}

func TestDialRejected(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	tests := []struct {
		name  string
		cfg   DialConfig
		field string // a *gateway.FieldError of this field
		err   error  // or this error
	}{
		{"embedded on a public address", DialConfig{DataDir: dir, ClientAddr: "0.0.0.0:2379"}, "client_addr", nil},
		{"embedded address without a port", DialConfig{DataDir: dir, ClientAddr: "127.0.0.1"}, "client_addr", nil},
		{"no endpoints", DialConfig{}, "endpoints", nil},
		{"bad prefix", DialConfig{Endpoints: []string{"127.0.0.1:1"}, Prefix: "with space"}, "prefix", nil},
		{"missing CA", DialConfig{Endpoints: []string{"127.0.0.1:1"}, TLS: &TLSFiles{CA: filepath.Join(dir, "none.pem")}}, "", fs.ErrNotExist},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Dial(tt.cfg)
			if err == nil {
				s.Close()
				t.Fatal("Dial succeeded")
			}
			var fe *gateway.FieldError
			if tt.err != nil && !errors.Is(err, tt.err) || tt.err == nil && (!errors.As(err, &fe) || fe.Field != tt.field) {
				t.Errorf("Dial = %v, want %v%s", err, tt.err, tt.field)
			}
		})
	}
	if err := CheckEmbeddedAddr("[::1]:2379"); err != nil {
		t.Errorf("CheckEmbeddedAddr refuses [::1]: %v", err)
	}
}
