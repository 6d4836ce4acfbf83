package runbook

import (
	"bytes"
	"encoding/json"
	"net/http/httptest"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/a8e2c47e/switchback/admin"
	"github.com/a8e2c47e/switchback/configstore"
	"github.com/a8e2c47e/switchback/gateway"
	"github.com/a8e2c47e/switchback/internal/testharness/etcdtest"
)

func TestMain(m *testing.M) { os.Exit(etcdtest.Run(m)) }

// server is a real admin API on a real (embedded) etcd, with deployment
// "shop" split between blue and green, flag new-cart at 30% and service
// payments at version 2.
type server struct {
	url    string
	store  *configstore.Store
	client *admin.Client
}

func newServer(t *testing.T) *server {
	t.Helper()
	store := etcdtest.NewStore(t)
	cfg := gateway.Config{
		Name: "shop",
		Pools: map[string]gateway.Pool{
			"blue":  {Upstreams: []string{"127.0.0.1:9001"}, Release: "v1"},
			"green": {Upstreams: []string{"127.0.0.1:9002"}, Release: "v2"},
		},
		Weights: map[string]float64{"blue": 50, "green": 50},
		Flags:   map[string]gateway.Flag{"new-cart": {Percent: 30}},
	}
	if _, _, err := store.Bootstrap(t.Context(), cfg, configstore.Meta{Author: "test", Source: configstore.SourceBootstrap}); err != nil {
		t.Fatal(err)
	}
	s, err := admin.New(admin.Options{Store: store, Instance: "host-a", Live: func(string) (uint64, bool) { return 1, true }})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	c, err := admin.NewClient(srv.URL, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, doc := range []string{`{"pool": {"max": 10}}`, `{"pool": {"max": 0}}`} {
		if _, err := c.PutService(t.Context(), "payments", json.RawMessage(doc), admin.WriteOptions{Reason: "test"}); err != nil {
			t.Fatal(err)
		}
	}
	return &server{url: srv.URL, store: store, client: c}
}

func (s *server) params() Params {
	return Params{
		Deployment: "shop", Admin: s.url, Reason: "drill: it's a test",
		Pool: "blue", Pools: []string{"green", "blue"},
		Flags:    []string{"new-cart"},
		Services: map[string]uint64{"payments": 1},
	}
}

// check asserts the state each pattern's rollback leads to.
func (s *server) check(t *testing.T, pattern string) {
	t.Helper()
	d, err := s.client.Status(t.Context(), "shop")
	if err != nil {
		t.Fatal(err)
	}
	switch pattern {
	case "flip":
		if d.Weights["blue"] != 100 || d.Weights["green"] != 0 {
			t.Errorf("weights after the flip rollback = %v, want blue 100, green 0", d.Weights)
		}
		if d.Meta.Reason != "drill: it's a test" {
			t.Errorf("reason = %q, want the one given", d.Meta.Reason)
		}
	case "flag":
		if p := d.Flags["new-cart"].Percent; p != 0 {
			t.Errorf("new-cart after the flag rollback = %v%%, want 0", p)
		}
	case "config":
		svc, err := s.client.GetService(t.Context(), "payments", 0)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(svc.Config), `"max":10`) && !strings.Contains(string(svc.Config), `"max": 10`) {
			t.Errorf("payments after the config rollback = %s, want version 1's max 10", svc.Config)
		}
	}
}

// TestRollbackCommandsWork runs every admin command the runbook prints,
// both the switchback command line and its curl equivalent, against a
// real admin server, and checks each one rolled back what it should.
func TestRollbackCommandsWork(t *testing.T) {
	for _, pattern := range []string{"flip", "flag", "config"} {
		for _, via := range []string{"cli", "curl"} {
			t.Run(pattern+"/"+via, func(t *testing.T) {
				s := newServer(t)
				cmds := Rollback(pattern, s.params())
				if len(cmds) == 0 {
					t.Fatal("no commands")
				}
				for _, c := range cmds {
					var stdout, stderr bytes.Buffer
					if via == "cli" {
						if code := Run(t.Context(), c, &stdout, &stderr, func(string) string { return "" }); code != 0 {
							t.Fatalf("%s: exit %d: %s", c.Shell(), code, stderr.String())
						}
						continue
					}
					cmd := exec.CommandContext(t.Context(), "sh", "-c", c.Curl)
					cmd.Stdout, cmd.Stderr = &stdout, &stderr
					if err := cmd.Run(); err != nil {
						t.Fatalf("%s: %v: %s", c.Curl, err, stderr.String())
					}
				}
				s.check(t, pattern)
			})
		}
	}
}

func TestRollbackFlipWithoutPools(t *testing.T) {
	cmds := Rollback("flip", Params{Deployment: "shop"})
	if len(cmds) != 1 || cmds[0].Args[0] != "flip" {
		t.Fatalf("got %+v, want one flip", cmds)
	}
	if got, want := cmds[0].Shell(), "switchback flip shop --reason 'runbook: roll back flip' --admin http://127.0.0.1:9180"; got != want {
		t.Errorf("Shell() = %q, want %q", got, want)
	}
}

func TestRollbackMigrationOrder(t *testing.T) {
	tests := []struct {
		name   string
		downTo int64
		snaps  []int64
		want   []string
	}{
		{"no snapshot", 1, nil, []string{"down --to 1"}},
		{"snapshot at the top", 1, []int64{3}, []string{"down --to 2", "snapshot restore 3", "down --to 1"}},
		{"snapshot right above", 2, []int64{3}, []string{"down --to 2", "snapshot restore 3"}},
		{"two snapshots", 1, []int64{3, 4}, []string{"down --to 3", "snapshot restore 4", "down --to 2", "snapshot restore 3", "down --to 1"}},
		{"snapshot below the target is not restored", 3, []int64{2}, []string{"down --to 3"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmds := Rollback("migration", Params{Database: "sqlite:app.db", MigrationsDir: "m", DownTo: tt.downTo, Snapshots: tt.snaps})
			var got []string
			for _, c := range cmds {
				if c.Curl != "" {
					t.Errorf("%s has a curl equivalent %q; migrations have no admin API", c.Shell(), c.Curl)
				}
				if !slices.Equal(c.Args[len(c.Args)-4:], []string{"--db", "sqlite:app.db", "--dir", "m"}) {
					t.Errorf("%s: want --db and --dir last", c.Shell())
				}
				got = append(got, strings.Join(c.Args[1:len(c.Args)-4], " "))
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestRollbackEmpty(t *testing.T) {
	for _, pattern := range append(slices.Clone(Patterns), "nonsense") {
		if got := Rollback(pattern, Params{}); got != nil {
			t.Errorf("Rollback(%q, empty) = %+v, want nil", pattern, got)
		}
	}
}
