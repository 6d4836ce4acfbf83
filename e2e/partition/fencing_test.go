//go:build linux

package partition

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/a8e2c47e/switchback/configstore"
	"github.com/a8e2c47e/switchback/gateway"
)

// TestDeposedLeaderWriteRefused: instance a leads the rollout role and is
// cut off from every etcd member; b is elected once a's lease expires and
// writes a step. When the link comes back, a's write, made as the leader
// it still believes it is, is refused by the store (the transaction is
// conditioned on a's election key), so the step is in history once.
func TestDeposedLeaderWriteRefused(t *testing.T) {
	l := newLab(t)
	c := startCluster(t, l)
	a, b := l.addHost("ia", 31), l.addHost("ib", 32)
	newStore := func(h *host) *configstore.Store {
		s, err := configstore.New(c.client(t, h))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	sa, sb := newStore(a), newStore(b)
	cfg := gateway.Config{
		Name:    "checkout",
		Pools:   map[string]gateway.Pool{"blue": {Upstreams: []string{"127.0.0.1:9001"}}, "green": {Upstreams: []string{"127.0.0.1:9002"}}},
		Weights: map[string]float64{"blue": 100, "green": 0},
	}
	if _, _, err := sa.Bootstrap(t.Context(), cfg, configstore.Meta{Author: "test", Source: configstore.SourceBootstrap}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Second)
	defer cancel()
	la, err := sa.Lead(ctx, "rollout", "ia", configstore.LeaseTTL(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer la.Resign()
	step := func(s *configstore.Store, l *configstore.Leader, who string, green float64) error {
		_, err := s.Update(ctx, "checkout", 0, configstore.Meta{Author: who, Source: configstore.SourceRollout, Reason: who + " step"},
			func(c *gateway.Config) error {
				c.Weights = map[string]float64{"blue": 100 - green, "green": green}
				return nil
			}, configstore.Fence(l))
		return err
	}
	if err := step(sa, la, "ia", 10); err != nil {
		t.Fatalf("a's step while it leads: %v", err)
	}

	for _, m := range c.members {
		l.cut(a, m)
	}
	start := time.Now()
	lb, err := sb.Lead(ctx, "rollout", "ib", configstore.LeaseTTL(2*time.Second))
	if err != nil {
		t.Fatalf("b campaigning while a is cut off: %v", err)
	}
	defer lb.Resign()
	t.Logf("b elected %s after a was cut off", time.Since(start).Round(time.Millisecond))
	if err := step(sb, lb, "ib", 20); err != nil {
		t.Fatalf("b's step as the new leader: %v", err)
	}

	l.heal()
	err = step(sa, la, "ia", 30)
	if !errors.Is(err, configstore.ErrNotLeader) {
		t.Fatalf("a's write after it was deposed: %v, want ErrNotLeader", err)
	}
	hist, err := sb.History(ctx, "checkout", 0)
	if err != nil {
		t.Fatal(err)
	}
	steps := map[string]int{}
	for _, m := range hist {
		steps[m.Reason]++
	}
	if steps["ia step"] != 1 || steps["ib step"] != 1 {
		t.Errorf("steps in history: %v; want a's first step and b's step once each, and nothing a wrote after it was deposed", steps)
	}
}
