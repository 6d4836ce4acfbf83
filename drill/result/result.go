// Package result holds what one drill measured and verified, in the JSON
// form `switchback drill --json` prints, the store keeps and
// GET /api/v1/drills serves. It imports nothing of the module, so the
// store's users (admin, the metrics, the runbook) read drill results
// without linking the drill runner.
package result

import "time"

// Trigger is how a drill's rollback is started.
type Trigger string

const (
	// Manual: the drill runs the documented rollback command, as an
	// on-call engineer would.
	Manual Trigger = "manual"
	// Guard: the drill only breaks things and waits for the gateway's own
	// fallback.
	Guard Trigger = "guard"
)

// Result is one drill of one pattern with one trigger.
type Result struct {
	Pattern string  `json:"pattern"`
	Trigger Trigger `json:"trigger"`
	// Deployment is the deployment drilled; Target is "sandbox" or the
	// admin API's URL.
	Deployment string `json:"deployment,omitempty"`
	Target     string `json:"target,omitempty"`
	// Passed: the rollback ran, clients recovered and the state after
	// equals the state before.
	Passed bool `json:"passed"`
	// Flagged: trigger to recovered took longer than FlagAfterMS.
	Flagged     bool  `json:"flagged"`
	FlagAfterMS int64 `json:"flag_after_ms"`
	// NotApplicable, when set, says why this pattern has no such trigger;
	// nothing was run and the drill neither passed nor failed.
	NotApplicable string `json:"not_applicable,omitempty"`
	// Error says why a drill that did not pass failed, when it is not
	// (only) a difference in state.
	Error string `json:"error,omitempty"`
	// Notes say what a reader of a passed drill should still know, such
	// as a guard that acted before a manual rollback did.
	Notes []string `json:"notes,omitempty"`

	Started time.Time `json:"started"`
	// TriggerAtMS is when the trigger came, from Started, to place the
	// durations on the steps' timeline.
	TriggerAtMS int64 `json:"trigger_at_ms"`
	// Durations are from the trigger, in milliseconds; a nil one was not
	// reached (or does not apply: Detected for manual triggers).
	Durations Durations `json:"durations_ms"`
	// FailedRequests are the client requests that failed (an error or a
	// 5xx) between the trigger and recovery; Requests all sent then.
	FailedRequests int64 `json:"failed_requests"`
	Requests       int64 `json:"requests"`
	StateEqual     bool  `json:"state_equal"`
	// Diff lists what differs between the state before and after, one
	// entry per part of the state.
	Diff  []Difference `json:"diff,omitempty"`
	Steps []Step       `json:"steps"`
}

// Durations are the drill's measurements, in milliseconds from the
// trigger: for a manual trigger the moment the rollback command is run,
// for a guard trigger the moment the fault is injected.
type Durations struct {
	// Detected: the first breach the guard reports (guard triggers).
	Detected *int64 `json:"detected,omitempty"`
	// Decided: the fallback written (guard) or the last rollback command
	// answered (manual).
	Decided *int64 `json:"decided,omitempty"`
	// Recovered: the first of 20 consecutive good answers from the
	// previous state, as clients see them.
	Recovered *int64 `json:"recovered,omitempty"`
	// Total is the whole drill, preparation and verification included.
	Total int64 `json:"total"`
}

// Step is one timed part of the drill: preparing, capturing, breaking,
// each rollback command, waiting, verifying.
type Step struct {
	Name string `json:"name"`
	// Command is the command line a manual rollback step ran.
	Command string `json:"command,omitempty"`
	// StartMS is from the drill's start (not the trigger), so the steps
	// draw a timeline.
	StartMS    int64  `json:"start_ms"`
	DurationMS int64  `json:"duration_ms"`
	Error      string `json:"error,omitempty"`
	Output     string `json:"output,omitempty"`
}

// Difference is one part of the state that the rollback did not restore.
type Difference struct {
	Part   string `json:"part"`
	Before string `json:"before"`
	After  string `json:"after"`
	// Lines is a line diff, "-" before and "+" after.
	Lines []string `json:"lines,omitempty"`
}

// OK reports whether r counts as a success for the exit status: passed
// and not flagged, or not applicable.
func (r Result) OK() bool {
	return r.NotApplicable != "" || (r.Passed && !r.Flagged)
}

// Ms is d in whole milliseconds, as a pointer for Durations.
func Ms(d time.Duration) *int64 {
	v := d.Milliseconds()
	return &v
}
