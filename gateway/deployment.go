package gateway

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
)

// Errors from Apply.
var (
	// ErrNameMismatch: the document is another deployment's.
	ErrNameMismatch = errors.New("gateway: document names another deployment")
	// ErrStale: the document is not newer than the live one. Several
	// writers apply versions (the store's watch, the guard, rollouts, a
	// reload's bootstrap); refusing older ones under the lock is what keeps
	// the live version from ever going backwards.
	ErrStale = errors.New("gateway: version is not newer than the live one")
)

// Binder is a host that serves a deployment, such as one Caddy handler. The
// host usually needs to build something per snapshot (for Caddy, a
// reverse_proxy per pool) before the snapshot may go live. Prepare does that
// work and may fail; nothing is visible to requests until every binder has
// prepared and commit is called. A binder must not block in commit.
type Binder interface {
	Prepare(*Snapshot) (commit func(), err error)
}

// Deployment is the live routing state of one deployment: the current
// snapshot, swapped atomically, and the binders that serve it. A Deployment
// outlives Caddy config reloads; several handlers (old and new config) may be
// bound to it at once.
type Deployment struct {
	name    string
	current atomic.Pointer[Snapshot]

	// mu serialises Apply and Attach, so binders see snapshots in order and
	// every binder is prepared for the snapshot that is current.
	mu      sync.Mutex
	binders map[*binding]struct{}
}

type binding struct{ b Binder }

// NewDeployment returns a deployment with no snapshot yet.
func NewDeployment(name string) *Deployment {
	return &Deployment{name: name, binders: make(map[*binding]struct{})}
}

// Name is the deployment's name.
func (d *Deployment) Name() string { return d.name }

// Snapshot returns the live snapshot, or nil before the first Apply.
func (d *Deployment) Snapshot() *Snapshot { return d.current.Load() }

// Apply compiles cfg and makes it live on every binder, or on none: a
// document that does not validate, that is not newer than the live one
// (ErrStale), or that a binder cannot prepare, changes nothing and returns
// the error.
func (d *Deployment) Apply(cfg Config) (*Snapshot, error) {
	if cfg.Name != d.name {
		return nil, fmt.Errorf("%w: %q, this is %q", ErrNameMismatch, cfg.Name, d.name)
	}
	snap, err := Compile(cfg)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if cur := d.current.Load(); cur != nil && cfg.Version <= cur.Version() {
		return nil, fmt.Errorf("%w: version %d, live %d", ErrStale, cfg.Version, cur.Version())
	}
	commits := make([]func(), 0, len(d.binders))
	for bd := range d.binders {
		commit, err := bd.b.Prepare(snap)
		if err != nil {
			return nil, fmt.Errorf("prepare version %d: %w", cfg.Version, err)
		}
		commits = append(commits, commit)
	}
	for _, c := range commits {
		c()
	}
	d.current.Store(snap)
	return snap, nil
}

// Attach binds b and brings it up to date with the current snapshot, if
// any. The returned detach is idempotent.
func (d *Deployment) Attach(b Binder) (detach func(), err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if snap := d.current.Load(); snap != nil {
		commit, err := b.Prepare(snap)
		if err != nil {
			return nil, fmt.Errorf("prepare version %d: %w", snap.Version(), err)
		}
		commit()
	}
	bd := &binding{b: b}
	d.binders[bd] = struct{}{}
	return func() {
		d.mu.Lock()
		delete(d.binders, bd)
		d.mu.Unlock()
	}, nil
}
