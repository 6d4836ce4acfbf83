package migrate

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/pressly/goose/v3"
)

var (
	// ErrMigrationFailed is returned when a migration fails; the Report
	// returned with it says what was applied and what was left behind.
	ErrMigrationFailed = errors.New("migrate: migration failed")
	// ErrHalfApplied is returned when an earlier run failed part-way through
	// a migration that could not be rolled back (MySQL DDL, or a goose NO
	// TRANSACTION migration). Nothing runs until a person repairs the schema
	// and calls Resolve.
	ErrHalfApplied = errors.New("migrate: a previous migration was left half-applied")
	// ErrNotFailed is returned by Resolve for a version with no recorded
	// failure.
	ErrNotFailed = errors.New("migrate: no failed migration recorded for that version")
)

// Report says what one up or down run did.
type Report struct {
	Direction string        `json:"direction"`
	Applied   []Applied     `json:"applied"`
	Failed    *Failure      `json:"failed,omitempty"`
	Cleared   []Interrupted `json:"cleared,omitempty"`
	// Version is the database version when the run ended.
	Version int64 `json:"version"`
}

// Applied is one migration that ran to completion.
type Applied struct {
	Version   int64         `json:"version"`
	File      string        `json:"file"`
	Duration  time.Duration `json:"duration_ns"`
	Snapshots []Snapshot    `json:"snapshots,omitempty"`
	// Irreversible is true for a migration without a Down section, run
	// because WithAllowIrreversible (--allow-irreversible) allowed it: an
	// up that cannot be undone, or a down that only forgot the up.
	Irreversible bool `json:"irreversible,omitempty"`
}

// Failure is the migration that stopped a run.
type Failure struct {
	Version int64  `json:"version"`
	File    string `json:"file"`
	Error   string `json:"error"`
	// RolledBack is true when the database rolled the whole migration back.
	RolledBack bool `json:"rolled_back"`
	// Left lists the schema changes the failed migration left behind when
	// it could not be rolled back.
	Left []string `json:"left,omitempty"`
}

// Interrupted is a migration recorded as started but never finished.
type Interrupted struct {
	Version   int64     `json:"version"`
	File      string    `json:"file"`
	Direction string    `json:"direction"`
	StartedAt time.Time `json:"started_at"`
	Cause     string    `json:"error,omitempty"`
	Left      []string  `json:"left,omitempty"`
}

// HalfAppliedError carries the record of a half-applied migration.
type HalfAppliedError struct {
	Interrupted
}

func (e *HalfAppliedError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "migration %d (%s) stopped part-way through %s at %s",
		e.Version, e.File, e.Direction, e.StartedAt.Format(time.RFC3339))
	if e.Cause != "" {
		fmt.Fprintf(&b, ": %s", e.Cause)
	}
	if len(e.Left) > 0 {
		fmt.Fprintf(&b, "; it left these changes behind: %s", strings.Join(e.Left, "; "))
	}
	fmt.Fprintf(&b, "; repair the schema by hand so it matches version %d or the one before it, then run `switchback migrate resolve %d`",
		e.Version, e.Version)
	return b.String()
}

func (e *HalfAppliedError) Unwrap() error { return ErrHalfApplied }

// Up applies pending migrations up to and including version to, or all of
// them when to is 0.
func (m *Migrator) Up(ctx context.Context, to int64) (*Report, error) {
	if err := m.checkVersion("--to", to, "all"); err != nil {
		return nil, err
	}
	if to == 0 {
		to = m.migrations[len(m.migrations)-1].Version
	}
	if err := m.refuseIrreversible(ctx, "up", func(s Status) bool { return s.State != string(goose.StateApplied) && s.Version <= to }); err != nil {
		return nil, err
	}
	rep := &Report{Direction: "up", Applied: []Applied{}}
	pending := func(ctx context.Context) (bool, error) {
		statuses, err := m.provider.Status(ctx)
		if err != nil {
			return false, fmt.Errorf("status: %w", err)
		}
		return slices.ContainsFunc(statuses, func(st *goose.MigrationStatus) bool {
			return st.State == goose.StatePending && st.Source.Version <= to
		}), nil
	}
	err := m.withLock(ctx, pending, func(ctx context.Context) error {
		if err := m.prepare(ctx, rep); err != nil {
			return err
		}
		statuses, err := m.provider.Status(ctx)
		if err != nil {
			return fmt.Errorf("status: %w", err)
		}
		for _, st := range statuses {
			if st.State != goose.StatePending || st.Source.Version > to {
				continue
			}
			if err := m.step(ctx, rep, m.migration(st.Source.Version), true); err != nil {
				return err
			}
		}
		return nil
	})
	return m.finish(ctx, rep, err)
}

// Down rolls back the latest migration when to is negative, or every
// migration above version to.
func (m *Migrator) Down(ctx context.Context, to int64) (*Report, error) {
	if to >= 0 {
		if err := m.checkVersion("--to", to, "roll back everything"); err != nil {
			return nil, err
		}
	}
	latest := true // only the latest applied migration is rolled back
	if err := m.refuseIrreversible(ctx, "down", func(s Status) bool {
		if s.State != string(goose.StateApplied) {
			return false
		}
		if to < 0 {
			ok := latest
			latest = false
			return ok
		}
		return s.Version > to
	}); err != nil {
		return nil, err
	}
	rep := &Report{Direction: "down", Applied: []Applied{}}
	err := m.withLock(ctx, nil, func(ctx context.Context) error {
		if err := m.prepare(ctx, rep); err != nil {
			return err
		}
		for n := 0; ; n++ {
			cur, err := m.provider.GetDBVersion(ctx)
			if err != nil {
				return fmt.Errorf("current version: %w", err)
			}
			if cur == 0 || (to < 0 && n == 1) || (to >= 0 && cur <= to) {
				return nil
			}
			mig := m.migration(cur)
			if mig == nil {
				return fmt.Errorf("version %d is applied but has no migration file in the directory; cannot roll it back", cur)
			}
			if err := m.step(ctx, rep, mig, false); err != nil {
				return err
			}
		}
	})
	return m.finish(ctx, rep, err)
}

// ErrIrreversible is returned by Up and Down, before they change anything,
// when a migration they would run has no Down section and
// WithAllowIrreversible was not given. The error is an *IrreversibleError
// naming the files.
var ErrIrreversible = errors.New("migrate: migration cannot be rolled back")

// IrreversibleError names the migrations without a Down section that Up
// or Down refused to run.
type IrreversibleError struct {
	Direction string   // up or down
	Files     []string // in the order they would have run
}

func (e *IrreversibleError) Error() string {
	files := strings.Join(e.Files, ", ")
	if e.Direction == "down" {
		return fmt.Sprintf("%s: no Down section (or an empty one), so rolling back would only forget it was applied and leave its changes in place; "+
			"nothing was changed; pass --allow-irreversible to do that anyway", files)
	}
	return fmt.Sprintf("%s: no Down section (or an empty one), so it could never be rolled back; nothing was changed; "+
		"write a Down that restores the schema (verify proves it), or pass --allow-irreversible to apply it anyway (the report records it)", files)
}

func (e *IrreversibleError) Unwrap() error { return ErrIrreversible }

// refuseIrreversible returns an *IrreversibleError for the migrations
// without a Down section that selected picks (walking Status newest first
// for down, oldest first for up), unless they are allowed. It only reads.
func (m *Migrator) refuseIrreversible(ctx context.Context, dir string, selected func(Status) bool) error {
	// Most sets have a Down everywhere: then nothing needs the database's
	// state, which is read here outside the migration lock (on SQLite a
	// reader racing the lock holder's snapshot can make it SQLITE_BUSY).
	if m.cfg.allowIrreversible || !slices.ContainsFunc(m.migrations, func(mig *Migration) bool { return len(mig.Down) == 0 }) {
		return nil
	}
	statuses, err := m.Status(ctx)
	if err != nil {
		return err
	}
	if dir == "down" {
		slices.Reverse(statuses)
	}
	var files []string
	for _, s := range statuses {
		if !selected(s) {
			continue
		}
		if mig := m.migration(s.Version); mig != nil && len(mig.Down) == 0 {
			files = append(files, mig.File)
		}
	}
	if len(files) > 0 {
		return &IrreversibleError{Direction: dir, Files: files}
	}
	return nil
}

func (m *Migrator) finish(ctx context.Context, rep *Report, err error) (*Report, error) {
	if errors.Is(err, errNotNeeded) {
		err = nil
	}
	if v, verr := m.provider.GetDBVersion(ctx); verr == nil {
		rep.Version = v
	}
	return rep, err
}

// prepare creates the journal and refuses to go on past a half-applied
// migration.
func (m *Migrator) prepare(ctx context.Context, rep *Report) error {
	if err := m.ensureInternal(ctx); err != nil {
		return err
	}
	open, err := m.interrupted(ctx)
	if err != nil {
		return err
	}
	for _, in := range open {
		done, err := m.completed(ctx, in)
		if err != nil {
			return err
		}
		mig := m.migration(in.Version)
		// A migration that finished (goose recorded it) or that the
		// database rolled back as a whole leaves nothing to repair.
		if done || (mig != nil && mig.transactional(m.target.Dialect)) {
			if err := m.clearJournal(ctx, in.Version); err != nil {
				return err
			}
			rep.Cleared = append(rep.Cleared, in)
			continue
		}
		return &HalfAppliedError{Interrupted: in}
	}
	return nil
}

// completed reports whether goose recorded the interrupted migration as
// finished in its direction.
func (m *Migrator) completed(ctx context.Context, in Interrupted) (bool, error) {
	statuses, err := m.provider.Status(ctx)
	if err != nil {
		return false, fmt.Errorf("status: %w", err)
	}
	for _, st := range statuses {
		if st.Source.Version == in.Version {
			applied := st.State == goose.StateApplied
			return applied == (in.Direction == "up"), nil
		}
	}
	return false, nil
}

// step runs one migration in one direction, with its snapshot and journal.
func (m *Migrator) step(ctx context.Context, rep *Report, mig *Migration, up bool) error {
	dir := "down"
	if up {
		dir = "up"
	}
	var before *Schema
	if !mig.transactional(m.target.Dialect) {
		var err error
		if before, err = DumpSchema(ctx, m.target.Dialect, m.db); err != nil {
			return err
		}
	}
	start := m.cfg.now()
	if err := m.startJournal(ctx, mig, dir, start); err != nil {
		return err
	}
	done := Applied{Version: mig.Version, File: mig.File, Irreversible: len(mig.Down) == 0}
	fail := func(err error) error {
		f := &Failure{Version: mig.Version, File: mig.File, Error: err.Error(), RolledBack: before == nil}
		if before != nil {
			after, derr := DumpSchema(ctx, m.target.Dialect, m.db)
			if derr != nil {
				f.Left = []string{"(could not read the schema after the failure: " + derr.Error() + ")"}
			} else {
				for _, c := range Diff(before, after) {
					f.Left = append(f.Left, c.String())
				}
			}
		}
		rep.Failed = f
		if f.RolledBack && len(done.Snapshots) > 0 {
			if derr := m.dropSnapshots(ctx, done.Snapshots); derr != nil {
				err = errors.Join(err, derr)
			}
		}
		if f.RolledBack || len(f.Left) == 0 {
			// Nothing is left behind: no reason to stop the next run.
			if cerr := m.clearJournal(ctx, mig.Version); cerr != nil {
				return errors.Join(err, cerr)
			}
		} else if jerr := m.failJournal(ctx, mig.Version, err.Error(), f.Left); jerr != nil {
			return errors.Join(err, jerr)
		}
		return fmt.Errorf("%w: %d (%s) %s: %w", ErrMigrationFailed, mig.Version, mig.File, dir, err)
	}
	if up && len(mig.Snapshot) > 0 {
		snaps, err := m.takeSnapshot(ctx, mig)
		if err != nil {
			return fail(err)
		}
		done.Snapshots = snaps
	}
	var res *goose.MigrationResult
	var err error
	if up {
		res, err = m.provider.UpByOne(ctx)
	} else {
		res, err = m.provider.Down(ctx)
	}
	if err != nil {
		var pe *goose.PartialError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return fail(err)
	}
	if res.Source.Version != mig.Version {
		return fail(fmt.Errorf("goose ran version %d instead of %d", res.Source.Version, mig.Version))
	}
	done.Duration = res.Duration
	rep.Applied = append(rep.Applied, done)
	if !up {
		if err := m.markReverted(ctx, mig.Version); err != nil {
			return err
		}
	}
	return m.clearJournal(ctx, mig.Version)
}

// Status is one migration's state.
type Status struct {
	Version   int64     `json:"version"`
	File      string    `json:"file"`
	Phase     Phase     `json:"phase"`
	State     string    `json:"state"` // applied, pending or half-applied
	AppliedAt time.Time `json:"applied_at,omitzero"`
	Snapshot  []string  `json:"snapshot,omitempty"`
	// Irreversible is true when the file has no Down section.
	Irreversible bool `json:"irreversible,omitempty"`
}

// Status lists every migration and whether it is applied. It only reads:
// on a database no migrator has touched it creates nothing (goose's own
// Status would create its version table) and reports every migration
// pending.
func (m *Migrator) Status(ctx context.Context) ([]Status, error) {
	versioned, err := m.tableExists(ctx, goose.DefaultTablename)
	if err != nil {
		return nil, err
	}
	var statuses []*goose.MigrationStatus
	if versioned {
		if statuses, err = m.provider.Status(ctx); err != nil {
			return nil, fmt.Errorf("status: %w", err)
		}
	} else {
		for _, mig := range m.migrations {
			statuses = append(statuses, &goose.MigrationStatus{State: goose.StatePending, Source: &goose.Source{Version: mig.Version}})
		}
	}
	var open []Interrupted
	if ok, err := m.tableExists(ctx, stateTable); err != nil {
		return nil, err
	} else if ok {
		if open, err = m.interrupted(ctx); err != nil {
			return nil, err
		}
	}
	out := make([]Status, 0, len(statuses))
	for _, st := range statuses {
		s := Status{Version: st.Source.Version, State: string(st.State), AppliedAt: st.AppliedAt}
		mig := m.migration(st.Source.Version)
		if mig != nil {
			s.File, s.Phase, s.Snapshot, s.Irreversible = mig.File, mig.Phase, mig.Snapshot, len(mig.Down) == 0
		}
		// A migration run in a transaction whose migrator died (killed
		// mid-down, say) was rolled back by the database as a whole: its
		// journal entry says nothing is left to repair, and the next run
		// clears it (prepare). Only one that ran outside a transaction can
		// be half-applied.
		if slices.ContainsFunc(open, func(in Interrupted) bool { return in.Version == s.Version }) && (mig == nil || !mig.transactional(m.target.Dialect)) {
			s.State = "half-applied"
		}
		out = append(out, s)
	}
	return out, nil
}

// Resolve clears the record of a half-applied migration once a person has
// repaired the schema.
func (m *Migrator) Resolve(ctx context.Context, version int64) error {
	return m.withLock(ctx, nil, func(ctx context.Context) error {
		if err := m.ensureInternal(ctx); err != nil {
			return err
		}
		open, err := m.interrupted(ctx)
		if err != nil {
			return err
		}
		if !slices.ContainsFunc(open, func(in Interrupted) bool { return in.Version == version }) {
			return fmt.Errorf("resolve %d: %w", version, ErrNotFailed)
		}
		return m.clearJournal(ctx, version)
	})
}

// The journal records a migration before it runs and clears it after, so a
// failure or a crash in between is visible to the next run.

func (m *Migrator) ensureInternal(ctx context.Context) error {
	for _, q := range []string{
		`CREATE TABLE IF NOT EXISTS ` + stateTable + ` (
			version BIGINT NOT NULL PRIMARY KEY,
			file VARCHAR(255) NOT NULL,
			direction VARCHAR(8) NOT NULL,
			started_at VARCHAR(40) NOT NULL,
			error TEXT,
			leftover TEXT)`,
		`CREATE TABLE IF NOT EXISTS ` + snapshotsTable + ` (
			version BIGINT NOT NULL,
			table_name VARCHAR(128) NOT NULL,
			snapshot_table VARCHAR(128) NOT NULL,
			row_count BIGINT NOT NULL,
			taken_at VARCHAR(40) NOT NULL,
			reverted_at VARCHAR(40),
			PRIMARY KEY (version, table_name))`,
	} {
		if _, err := m.db.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("create internal table: %w", err)
		}
	}
	// reverted_at came after the snapshot table; add it to one created
	// without it.
	cols, err := m.columns(ctx, snapshotsTable)
	if err != nil {
		return err
	}
	if !slices.ContainsFunc(cols, func(c column) bool { return strings.EqualFold(c.name, "reverted_at") }) {
		if _, err := m.db.ExecContext(ctx, "ALTER TABLE "+snapshotsTable+" ADD COLUMN reverted_at VARCHAR(40)"); err != nil {
			return fmt.Errorf("upgrade internal table %s: %w", snapshotsTable, err)
		}
	}
	return nil
}

func (m *Migrator) startJournal(ctx context.Context, mig *Migration, dir string, at time.Time) error {
	_, err := m.db.ExecContext(ctx, m.q(`INSERT INTO `+stateTable+` (version, file, direction, started_at) VALUES (?, ?, ?, ?)`),
		mig.Version, mig.File, dir, at.UTC().Format(time.RFC3339Nano))
	if err != nil {
		return fmt.Errorf("journal start of %d: %w", mig.Version, err)
	}
	return nil
}

func (m *Migrator) failJournal(ctx context.Context, v int64, msg string, left []string) error {
	_, err := m.db.ExecContext(ctx, m.q(`UPDATE `+stateTable+` SET error = ?, leftover = ? WHERE version = ?`),
		msg, strings.Join(left, "\n"), v)
	if err != nil {
		return fmt.Errorf("journal failure of %d: %w", v, err)
	}
	return nil
}

func (m *Migrator) clearJournal(ctx context.Context, v int64) error {
	if _, err := m.db.ExecContext(ctx, m.q(`DELETE FROM `+stateTable+` WHERE version = ?`), v); err != nil {
		return fmt.Errorf("journal end of %d: %w", v, err)
	}
	return nil
}

func (m *Migrator) interrupted(ctx context.Context) ([]Interrupted, error) {
	var out []Interrupted
	err := queryRows(ctx, m.db, `SELECT version, file, direction, started_at, error, leftover FROM `+stateTable+` ORDER BY version`,
		func(r *sql.Rows) error {
			var in Interrupted
			var started string
			var msg, left sql.NullString
			if err := r.Scan(&in.Version, &in.File, &in.Direction, &started, &msg, &left); err != nil {
				return err
			}
			in.StartedAt, _ = time.Parse(time.RFC3339Nano, started)
			in.Cause = msg.String
			if left.String != "" {
				in.Left = strings.Split(left.String, "\n")
			}
			out = append(out, in)
			return nil
		})
	if err != nil {
		return nil, fmt.Errorf("read journal: %w", err)
	}
	return out, nil
}
