// Package drill exercises Switchback's rollback paths end to end and
// measures them from the client's side: `switchback drill PATTERN`.
//
// # Patterns
//
// Each rollback path is a Pattern (flip, flag, config, migration and
// release, each in its own file). The runner drives every pattern through
// the same steps:
//
//	Prepare   bring the target to the state the drill starts from (for flip:
//	          traffic split to the new pool) and wait until clients see it
//	Capture   the state before, as named text parts (State)
//	Break     inject the fault (the new pool fails, a flag's cohort fails,
//	          a bad configuration version is written)
//	          manual trigger: wait until clients see the fault, then run
//	          each command of Rollback through Env.CLI, exactly as the
//	          runbook prints it (the trigger is the first command)
//	          guard trigger: the trigger is the fault; nothing is run, the
//	          gateway's own fallback must act (Guarded names what the
//	          guard watches: detected is the first breach its view shows,
//	          decided the fallback event's time; the guard decides in the
//	          25 ms tick it detects, so detected is often the decision)
//	Probe     called at Env.Rate per second from the trigger on: one client
//	          observation; recovered is the first of 20 consecutive good
//	          answers from the previous state
//	Capture   the state after, once recovered
//	Compare   the parts that differ become Result.Diff; any difference
//	          fails the drill
//	Cleanup   always, even after a failure: clear injected faults and
//	          anything Prepare added
//
// A pattern that has no such trigger says so from Applicable; the result
// is "not applicable", never a faked run.
//
// # The release pattern
//
// The full chain: Break makes a release as CI would (start, a flag to
// 100%, a change set on two services, all traffic to the new pool, an
// expand migration by `switchback migrate --database NAME --config FILE
// up`, finish) and then makes the new pool fail; the rollback is the
// runbook's one command, `switchback release rollback ID`, which only
// asks: the elected instance runs the steps. So recovered is clients
// getting good answers from the previous pool without the flag AND the
// release rolled_back, and the steps' durations come from the release
// record (Stepped). The release is made in Break, not Prepare, so that
// the state before is the one its rollback must restore. The guard
// trigger is not applicable: a guard's fallback moves traffic and turns
// flags off, but leaves the change set and the migration and does not
// roll the release back. The database is one the gateway knows by name
// (the sandbox's gateway has `database drill sqlite:PATH { migrations
// DIR }` with the drill's release_migrations in DIR).
//
// # Writing a pattern
//
// Implement Pattern (and Guarded when the guard watches it), keep every
// rollback command in Rollback (they come from runbook.Rollback, so the
// runbook and the drill run the same lines), and register it in
// Patterns. Probe must be cheap and safe to call concurrently. State
// parts must be canonical (sorted keys, no timestamps that change
// without a change of state): equal states compare equal as text.
//
// # The manual trigger
//
// Env.CLI runs each command as a separate process of the switchback
// binary (Exec: os.Executable() from `switchback drill`), with the admin
// API's address and token in SWITCHBACK_ADMIN and SWITCHBACK_TOKEN as an
// engineer's shell has them. Not the admin CLI's entry in-process: the
// drill proves the binary, its argument handling (options anywhere,
// Caddy's command table) and the process's start-up, which an engineer
// pays too, and a test can still swap the CLI (a slow engineer, a broken
// command).
//
// # Where it runs
//
// Env describes the target: a sandbox (Sandbox starts embedded etcd, the
// example blue/green backends, a real switchback gateway process, a
// SQLite database, all on 127.0.0.1) or staging (an admin API, a
// deployment marked "environment staging", the gateway's traffic URL).
// The sandbox serves two deployments: SandboxGuarded, with a guard, for
// guard triggers, and SandboxUnguarded for manual ones, so the documented
// command and not a guard faster than any engineer is what the manual
// drill measures. On a guarded staging deployment a manual drill races
// the guard; the result's Notes say when the guard acted.
//
// Results (package drill/result) are printed as a table, JSON or a
// report (report.md and report.html), and stored through the admin API
// (POST /api/v1/drills) for `switchback drill history`.
package drill
