package drill

import (
	"context"
	"time"
)

// Options shape a run.
type Options struct {
	// FlagAfter flags a drill whose trigger to recovered takes longer
	// (default 90 s).
	FlagAfter time.Duration
	// Timeout bounds each drill from its trigger; a drill not recovered
	// by then fails (default 2 × FlagAfter, at least 10 s).
	Timeout time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Run drills p with trigger t against env and returns what it measured.
// It never panics on a failing target: every failure is in the Result.
func Run(ctx context.Context, env *Env, p Pattern, t Trigger, o Options) Result {
	panic("not yet")
}
