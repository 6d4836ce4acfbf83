// Package release holds the release record: what one release of a
// deployment changed across code (a pool's upstreams and release label),
// traffic, flags, the configuration of the services behind the gateway and
// database schemas, as the state before and after, so that all of it can
// be rolled back together in a safe order.
//
// A release does not list the versions it wrote: a version belongs to the
// release when it was written while the release was open, so the linked
// versions are the ranges (Before, After] of each document. That keeps
// every write path (flip, rollout step, flag, change set, migration)
// unchanged and makes the link exact: versions are numbered per document.
//
// The package decides nothing about storage or execution: configstore
// keeps records, control captures state and drives the rollback, admin
// serves them.
package release

import "time"

// Status is where a release is in its life.
type Status string

const (
	// Open: started, its changes are being made; versions written now
	// belong to it.
	Open Status = "open"
	// Finished: its "after" state is recorded; it is live.
	Finished Status = "finished"
	// RollingBack: a rollback is under way, driven by the elected
	// instance one step at a time.
	RollingBack Status = "rolling_back"
	// RolledBack: every rollback step finished.
	RolledBack Status = "rolled_back"
	// RollbackFailed: a step was refused or failed; the release stays
	// here until an operator acts (the failing step says what to do).
	RollbackFailed Status = "rollback_failed"
)

// Release is one release record.
type Release struct {
	// ID is the store's identifier, like "r-20261129-204512-3f9a".
	ID string `json:"id"`
	// Name is the human name (often the code version), unique among the
	// deployment's releases that are not rolled back.
	Name       string `json:"name"`
	Deployment string `json:"deployment"`
	// Pool is the pool the release ships to, Label its release label
	// (code version) and Upstreams the upstreams that run it: kept so the
	// release can be redeployed after its pool was reused.
	Pool      string   `json:"pool"`
	Label     string   `json:"label,omitempty"`
	Upstreams []string `json:"upstreams,omitempty"`
	// Databases says which schema the release's code needs, by the
	// database name of the `database NAME DSN` global option.
	Databases map[string]SchemaNeed `json:"databases,omitempty"`

	Status Status `json:"status"`
	Author string `json:"author,omitempty"`
	Reason string `json:"reason,omitempty"`

	// Before is captured when the release starts, After when it
	// finishes; a rollback returns everything the release changed to
	// Before.
	Before State  `json:"before"`
	After  *State `json:"after,omitempty"`

	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished,omitzero"`

	// Rollback is the rollback under way or done; nil before one starts.
	Rollback *Rollback `json:"rollback,omitempty"`
}

// SchemaNeed is the schema a release's code needs of one database.
type SchemaNeed struct {
	// Version is the migration version the release's code expects.
	Version int64 `json:"version"`
	// MinVersion is the lowest version the code still works with (from
	// the expand/contract phases: the code tolerates every expand between
	// MinVersion and Version). A contract migration above Version applied
	// since makes the code incompatible: traffic may not flip back to it.
	MinVersion int64 `json:"min_version"`
}

// State is the state of everything a release can change, at one moment.
type State struct {
	// DeploymentVersion is the deployment's version at that moment.
	DeploymentVersion uint64             `json:"deployment_version"`
	Weights           map[string]float64 `json:"weights"`
	Flags             map[string]float64 `json:"flags,omitempty"`
	// Pools' upstreams and labels, so redeploy and the compatibility gate
	// know which code each pool ran.
	Pools map[string]PoolState `json:"pools,omitempty"`
	// Services maps a service name to its configuration version.
	Services map[string]uint64 `json:"services,omitempty"`
	// ChangeSets are the change sets applied while the release was open
	// (only in After).
	ChangeSets []string `json:"changesets,omitempty"`
	// Databases maps a database name to its migration version.
	Databases map[string]int64 `json:"databases,omitempty"`
	At        time.Time        `json:"at"`
}

// PoolState is one pool's code at one moment.
type PoolState struct {
	Upstreams []string `json:"upstreams"`
	Label     string   `json:"label,omitempty"`
}

// StepKind is one kind of rollback step, in the order they run.
type StepKind string

const (
	// StepFlags returns the flags the release raised to their previous
	// percentages.
	StepFlags StepKind = "flags"
	// StepTraffic returns traffic to the previous pool once its retained
	// target passed its health checks recently.
	StepTraffic StepKind = "traffic"
	// StepConfig reverts the services' configuration.
	StepConfig StepKind = "config"
	// StepSchema rolls the release's migrations down (only when all are
	// reversible and none is a contract) and optionally restores data.
	StepSchema StepKind = "schema"
)

// StepOrder is the order in which rollback steps run: users first stop
// seeing the new behaviour (flags), then the old code serves (traffic),
// then its configuration comes back, and only then does the schema move,
// when no live code needs the new one.
var StepOrder = []StepKind{StepFlags, StepTraffic, StepConfig, StepSchema}

// Rollback is a release's rollback: its plan and how far it got.
type Rollback struct {
	Requested time.Time `json:"requested"`
	By        string    `json:"by,omitempty"`
	Reason    string    `json:"reason,omitempty"`
	// RestoreData restores the data snapshots after the schema step.
	RestoreData bool `json:"restore_data,omitempty"`
	// Force overwrote what changed since the release and passed the
	// compatibility gate and the health check; recorded so it is seen.
	Force    bool      `json:"force,omitempty"`
	Steps    []Step    `json:"steps"`
	Finished time.Time `json:"finished,omitzero"`
}

// Step is one rollback step and its outcome.
type Step struct {
	Kind StepKind `json:"kind"`
	// Plan says what the step will do, in words an operator reads.
	Plan string `json:"plan"`
	// Status is pending, done, skipped (nothing to undo) or failed.
	Status   string    `json:"status"`
	Started  time.Time `json:"started,omitzero"`
	Finished time.Time `json:"finished,omitzero"`
	// Result names what the step wrote: a deployment version, service
	// versions, migrations rolled down; or why it failed and what to do.
	Result string `json:"result,omitempty"`
	// Drift names what changed since the release and how the step treats
	// it (left alone, or overwritten with force).
	Drift []string `json:"drift,omitempty"`

	// What the step sets, fixed when the plan is made so that a rollback
	// resumed on another instance does exactly what was planned.
	Flags       map[string]float64   `json:"flags,omitempty"`
	RemoveFlags []string             `json:"remove_flags,omitempty"`
	Weights     map[string]float64   `json:"weights,omitempty"`
	Pools       map[string]PoolState `json:"pools,omitempty"`
	ChangeSets  []string             `json:"changesets,omitempty"`
	Services    map[string]uint64    `json:"services,omitempty"`
	// Databases maps a database to the version its down goes to.
	Databases   map[string]int64 `json:"databases,omitempty"`
	RestoreData bool             `json:"restore_data,omitempty"`
}

// Step statuses.
const (
	StepPending = "pending"
	StepDone    = "done"
	StepSkipped = "skipped"
	StepFailed  = "failed"
)
