// Package control holds Switchback's control loops and the writes they
// make: the rollout driver (elected among the gateway instances, it asks
// rollout.Next what each running rollout does and writes it, fenced by its
// leadership), the operator's rollout actions (start, pause, resume,
// abort), the guard's fallback writer, and the events log.
//
// Every decision is a pure function elsewhere (rollout.Next, guard.Judge);
// control only reads the store, asks, and writes what the answer says, so
// a driver's tick can be run by hand with a chosen time and guard view.
// It knows nothing of Caddy: the gateway (caddymodule) starts Run and
// hands the guard's actions to FallBack; the admin API calls the rollout
// actions. Both record events through Record.
package control

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/a8e2c47e/switchback/configstore"
	"github.com/a8e2c47e/switchback/guard"
)

// Options configure a Control. Store is required; everything else has a
// default.
type Options struct {
	// Store holds the deployments, their rollouts and the events log.
	Store *configstore.Store
	// Instance names this gateway instance: the author of the versions
	// the driver and the guard write, and the instance of every event.
	Instance string
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Logger; nil means no logging.
	Logger *zap.Logger
	// Reachable reports whether the store answers now. While it does not,
	// events are only logged and no fallback is attempted: each attempt
	// would stall the guard's loop for a timeout. Nil means always.
	Reachable func() bool
	// Recorded is called with every event recorded (for metrics); may be
	// nil.
	Recorded func(configstore.Event)
	// Wrote is called with every version this Control writes, so the
	// instance applies its own write without waiting for the watch to
	// bring it back; may be nil.
	Wrote func(configstore.Document)
	// GuardView returns this instance's guard view of a deployment, which
	// the rollout driver judges a target's health by. Nil means the driver
	// never knows the health: rollouts hold once their first step has
	// baked.
	GuardView func(name string) (guard.View, bool)
	// Schemas are the databases releases need; nil means none is
	// configured: the compatibility gate checks nothing and a release
	// that names a database cannot be rolled back.
	Schemas Schemas
}

// Control does the control plane's writes for one instance. Its methods
// are safe for concurrent use.
type Control struct {
	store     *configstore.Store
	instance  string
	now       func() time.Time
	log       *zap.Logger
	reachable func() bool
	recorded  func(configstore.Event)
	wrote     func(configstore.Document)
	guardView func(string) (guard.View, bool)
	schemas   Schemas

	// leading is whether this instance holds the driver's leadership.
	leading atomic.Bool

	// mu protects lastGuardWrite: when each deployment's last guard
	// version was written, by any instance (the guard's cooldown).
	mu             sync.Mutex
	lastGuardWrite map[string]time.Time

	// releasesMu protects releasesMark and releasesIdle: the releases as
	// the driver last listed them, and whether none was rolling back then.
	// While both hold, its tick reads one key instead of every release.
	releasesMu   sync.Mutex
	releasesMark configstore.ReleasesMark
	releasesIdle bool
}

// New builds a Control.
func New(opts Options) (*Control, error) {
	if opts.Store == nil {
		return nil, errors.New("control: Options.Store is required")
	}
	c := &Control{
		store:          opts.Store,
		instance:       opts.Instance,
		now:            opts.Now,
		log:            opts.Logger,
		reachable:      opts.Reachable,
		recorded:       opts.Recorded,
		wrote:          opts.Wrote,
		guardView:      opts.GuardView,
		schemas:        bound(opts.Schemas),
		lastGuardWrite: make(map[string]time.Time),
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.log == nil {
		c.log = zap.NewNop()
	}
	if c.reachable == nil {
		c.reachable = func() bool { return true }
	}
	if c.recorded == nil {
		c.recorded = func(configstore.Event) {}
	}
	if c.wrote == nil {
		c.wrote = func(configstore.Document) {}
	}
	if c.guardView == nil {
		c.guardView = func(string) (guard.View, bool) { return guard.View{}, false }
	}
	return c, nil
}

// eventTimeout bounds the recording of one event.
const eventTimeout = 2 * time.Second

// Record appends ev to the store's events log as this instance's, and logs
// it. A store outage loses the log entry but never the log line. The entry
// is written even when ctx has ended (a request whose caller hung up, an
// abort finishing), within eventTimeout.
func (c *Control) Record(ctx context.Context, ev configstore.Event) {
	ev.Instance = c.instance
	c.recorded(ev)
	level := zap.InfoLevel
	if alarming(ev.Kind) {
		level = zap.WarnLevel
	}
	c.log.Log(level, "event", zap.String("kind", ev.Kind), zap.String("deployment", ev.Deployment),
		zap.String("subject", ev.Subject), zap.Uint64("version", ev.Version), zap.String("reason", ev.Reason))
	if !c.reachable() {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), eventTimeout)
	defer cancel()
	if _, err := c.store.AppendEvent(ctx, ev); err != nil {
		c.log.Warn("recording event", zap.String("kind", ev.Kind), zap.String("deployment", ev.Deployment), zap.Error(err))
	}
}
