package etcdtest_test

import (
	"os"
	"testing"

	"github.com/a8e2c47e/switchback/configstore"
	"github.com/a8e2c47e/switchback/gateway"
	"github.com/a8e2c47e/switchback/internal/testharness/etcdtest"
)

func TestMain(m *testing.M) { os.Exit(etcdtest.Run(m)) }

func shop() gateway.Config {
	return gateway.Config{
		Name:    "shop",
		Pools:   map[string]gateway.Pool{"blue": {Upstreams: []string{"127.0.0.1:9001"}}, "green": {Upstreams: []string{"127.0.0.1:9002"}}},
		Weights: map[string]float64{"blue": 100, "green": 0},
	}
}

var meta = configstore.Meta{Author: "test", Source: configstore.SourceBootstrap}

// TestNewStoreIsolated: stores on the shared etcd do not see each other's
// deployments.
func TestNewStoreIsolated(t *testing.T) {
	a, b := etcdtest.NewStore(t), etcdtest.NewStore(t)
	if _, _, err := a.Bootstrap(t.Context(), shop(), meta); err != nil {
		t.Fatal(err)
	}
	if names, err := b.List(t.Context()); err != nil || len(names) != 0 {
		t.Errorf("the other store lists %v, %v; want nothing", names, err)
	}
}

// TestRestartKeepsData: an etcd of the test's own comes back on the same
// data and address.
func TestRestartKeepsData(t *testing.T) {
	e := etcdtest.Start(t)
	if _, _, err := e.Store(t).Bootstrap(t.Context(), shop(), meta); err != nil {
		t.Fatal(err)
	}
	e.Stop(t)
	e.Start(t)
	doc, err := e.Store(t).Get(t.Context(), "shop")
	if err != nil || doc.Meta.Version != 1 {
		t.Errorf("after a restart: version %d, %v; want version 1", doc.Meta.Version, err)
	}
}
