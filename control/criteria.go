package control

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/a8e2c47e/switchback/configstore"
	"github.com/a8e2c47e/switchback/criteria"
	"github.com/a8e2c47e/switchback/gateway"
	"github.com/a8e2c47e/switchback/guard"
)

// criteriaTick is how often the criteria loop looks for a probe due.
const criteriaTick = 100 * time.Millisecond

// historyDepth bounds how many versions a change is looked for in.
const historyDepth = 20

// Criteria probes the deployments' external criteria while this instance
// is the elected driver (one instance queries the databases and
// Prometheus, not every one), and keeps their latest samples for the
// guard's judgement (Input). Build it with Control.Criteria.
type Criteria struct {
	c      *Control
	prober *criteria.Prober

	// mu protects deps.
	mu   sync.Mutex
	deps map[string]*criteriaOf
}

// criteriaOf is one deployment's criteria and what is known of them.
type criteriaOf struct {
	list   []gateway.Criterion
	states []guard.CriterionState
	next   []time.Time // when each is probed next
	// change is the newest change to blame, looked up at version.
	change  *guard.Change
	version uint64
}

// Criteria returns the criteria loop of this Control, probing with p.
func (c *Control) Criteria(p *criteria.Prober) *Criteria {
	return &Criteria{c: c, prober: p, deps: map[string]*criteriaOf{}}
}

// Run probes every due criterion of the snapshots live returns, while
// this instance leads; it returns when ctx ends (the caller owns it and
// waits for it).
func (k *Criteria) Run(ctx context.Context, live func() []*gateway.Snapshot) {
	t := time.NewTicker(criteriaTick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			k.Tick(ctx, live(), k.c.now())
		}
	}
}

// Tick probes the criteria due at now. Off the lead it forgets every
// sample: another instance probes, and a stale breach must not outlive
// the leadership.
func (k *Criteria) Tick(ctx context.Context, snaps []*gateway.Snapshot, now time.Time) {
	if !k.c.Leading() {
		k.mu.Lock()
		clear(k.deps)
		k.mu.Unlock()
		return
	}
	seen := map[string]bool{}
	for _, snap := range snaps {
		g := snap.Guard()
		if g == nil || len(g.Criteria) == 0 {
			continue
		}
		name := snap.Name()
		seen[name] = true
		d := k.deployment(name, g.Criteria)
		breaching := false
		for i, c := range d.list {
			if now.Before(d.next[i]) {
				breaching = breaching || d.states[i].Last.Breach
				continue
			}
			s := k.prober.Probe(ctx, c, now)
			k.mu.Lock()
			d.states[i] = criteria.Track(d.states[i], s)
			d.next[i] = now.Add(c.Interval.Std(gateway.DefaultCriterionInterval))
			k.mu.Unlock()
			breaching = breaching || s.Breach
		}
		if breaching {
			k.blame(ctx, d, snap, now)
		}
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	for name := range k.deps {
		if !seen[name] {
			delete(k.deps, name)
		}
	}
}

// deployment returns a deployment's criteria state, starting it afresh
// when its criteria changed.
func (k *Criteria) deployment(name string, list []gateway.Criterion) *criteriaOf {
	k.mu.Lock()
	defer k.mu.Unlock()
	d := k.deps[name]
	if d == nil || !slices.Equal(d.list, list) {
		d = &criteriaOf{list: slices.Clone(list), states: make([]guard.CriterionState, len(list)), next: make([]time.Time, len(list))}
		for i, c := range list {
			d.states[i].Criterion = c
		}
		k.deps[name] = d
	}
	return d
}

// blame looks up, once per version, the change a breach would roll back.
func (k *Criteria) blame(ctx context.Context, d *criteriaOf, snap *gateway.Snapshot, now time.Time) {
	k.mu.Lock()
	known := d.version == snap.Version()
	k.mu.Unlock()
	if known {
		return
	}
	window := guard.Compile(snap.Guard()).Window
	for _, c := range d.list {
		window = max(window, c.Window.Std(0))
	}
	ch, err := k.c.RecentChange(ctx, snap.Name(), now.Add(-window))
	if err != nil {
		k.c.log.Debug("criteria: looking up the newest change", zap.String("deployment", snap.Name()), zap.Error(err))
		return
	}
	k.mu.Lock()
	d.change, d.version = ch, snap.Version()
	k.mu.Unlock()
}

// Input returns the criteria samples and the change to blame of a
// deployment, for guard.Input; nothing off the lead.
func (k *Criteria) Input(name string) ([]guard.CriterionState, *guard.Change) {
	k.mu.Lock()
	defer k.mu.Unlock()
	d := k.deps[name]
	if d == nil {
		return nil, nil
	}
	return slices.Clone(d.states), d.change
}

// RecentChange returns deployment name's newest change made since since
// that a criterion's breach may roll back (a flag raised, weights moved),
// or nil. It looks no further back than the newest guard version: what
// the guard already rolled back, or a change older than its last
// fallback, is not blamed again.
func (c *Control) RecentChange(ctx context.Context, name string, since time.Time) (*guard.Change, error) {
	metas, err := c.store.History(ctx, name, historyDepth)
	if err != nil {
		return nil, err
	}
	for _, m := range metas {
		if m.Time.Before(since) || m.Source == configstore.SourceGuard || m.Fallback || m.Version <= 1 {
			return nil, nil
		}
		next, err := c.store.Version(ctx, name, m.Version)
		if err != nil {
			return nil, err
		}
		prev, err := c.store.Version(ctx, name, m.Version-1)
		if errors.Is(err, configstore.ErrNotFound) {
			return nil, nil // retention dropped it: nothing to go back to
		}
		if err != nil {
			return nil, err
		}
		if ch, ok := guard.ChangeOf(prev.Config, next.Config); ok {
			ch.Version, ch.Time = m.Version, m.Time
			return &ch, nil
		}
	}
	return nil, nil
}
