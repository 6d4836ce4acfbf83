package release

import (
	"fmt"
	"maps"
	"slices"
)

// The compatibility gate: traffic may not move onto a pool whose code
// needs a schema that a contract migration applied since has taken away
// (a dropped column, a renamed table). Expand migrations are harmless to
// older code, so only contracts count. Every path that moves traffic asks
// the gate (an operator's flip or weights, a rollout step, the guard's
// fallback, a release rollback); --force overrides it, and the override
// is recorded in the version's reason.

// Code is what the gate knows of the code a pool runs: the release it
// belongs to and the schema it needs of each database.
type Code struct {
	Pool  string
	Label string
	// Release and ReleaseID name the release record the code came from;
	// Release is empty when the need was taken from a rollback's Before
	// state (the code that ran before the release).
	Release   string
	ReleaseID string
	Databases map[string]SchemaNeed
}

// IncompatibleError refuses traffic onto a pool whose code needs an older
// schema than a contract migration applied since left.
type IncompatibleError struct {
	Code
	Database string
	// Need is the schema version the code needs; Contract the contract
	// migration applied since.
	Need     int64
	Contract Migration
}

func (e *IncompatibleError) Error() string {
	who := fmt.Sprintf("release %s (%s)", e.Release, e.ReleaseID)
	if e.Release == "" {
		who = "the code from before release " + e.ReleaseID
		if e.Label != "" {
			who += " (" + e.Label + ")"
		}
	}
	return fmt.Sprintf("pool %s runs %s, which needs database %s at schema version %d; contract migration %s (version %d) was applied since and removed what that code uses, "+
		"so sending it traffic would fail its requests: roll forward instead, or first bring the schema back "+
		"(switchback migrate down --database %s --to %d, then switchback migrate snapshot restore %d to get the data back); "+
		"--force sends the traffic anyway and records that it did",
		e.Pool, who, e.Database, e.Need, e.Contract.File, e.Contract.Version, e.Database, e.Need, e.Contract.Version)
}

// CodeOn finds the code pool runs, with p its upstreams and label now.
// First the newest release that shipped that label to that pool (its own
// Label, or the label its After left on its pool). Failing that, the
// newest release that found that label on that pool when it started and
// shipped elsewhere: the code that ran before it, which needs the schema
// versions of its Before (that is how a rollback's way back is gated). A
// pool without a label, or with one no release names, is unknown to the
// gate.
func CodeOn(pool string, p PoolState, releases []Release) (Code, bool) {
	if p.Label == "" {
		return Code{}, false
	}
	var shipped, before *Release
	for i := range releases {
		r := &releases[i]
		if r.Pool == pool {
			match := r.Label == p.Label
			if r.After != nil {
				if a, ok := r.After.Pools[pool]; ok && a.Label == p.Label {
					match = true
				}
			}
			if match && (shipped == nil || r.Started.After(shipped.Started)) {
				shipped = r
			}
			continue
		}
		if b, ok := r.Before.Pools[pool]; ok && b.Label == p.Label && (before == nil || r.Started.After(before.Started)) {
			before = r
		}
	}
	switch {
	case shipped != nil:
		return Code{Pool: pool, Label: p.Label, Release: shipped.Name, ReleaseID: shipped.ID, Databases: shipped.Databases}, true
	case before != nil:
		return BeforeCode(pool, p.Label, *before), true
	}
	return Code{}, false
}

// BeforeCode is the code that ran on pool before release r: it worked with
// the schema versions r found.
func BeforeCode(pool, label string, r Release) Code {
	needs := make(map[string]SchemaNeed, len(r.Before.Databases))
	for db, v := range r.Before.Databases {
		needs[db] = SchemaNeed{Version: v, MinVersion: v}
	}
	return Code{Pool: pool, Label: label, ReleaseID: r.ID, Databases: needs}
}

// Gate returns nil when the code's every schema need holds against the
// migrations applied to each database (applied[db]), or the first
// contract applied above a need.
func Gate(code Code, applied map[string][]Migration) *IncompatibleError {
	for _, db := range slices.Sorted(maps.Keys(code.Databases)) {
		need := code.Databases[db]
		for _, m := range applied[db] {
			if m.Contract && m.Version > need.Version {
				return &IncompatibleError{Code: code, Database: db, Need: need.Version, Contract: m}
			}
		}
	}
	return nil
}

// Entering lists the pools that take traffic in to and took none in from:
// the ones the gate must pass. A pool that serves already is live code;
// refusing more traffic to it would protect nothing.
func Entering(from, to map[string]float64) []string {
	var out []string
	for _, p := range slices.Sorted(maps.Keys(to)) {
		if to[p] > 0 && from[p] == 0 {
			out = append(out, p)
		}
	}
	return out
}
