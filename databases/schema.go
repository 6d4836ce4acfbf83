package databases

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/pressly/goose/v3"

	"github.com/a8e2c47e/switchback/gateway"
	"github.com/a8e2c47e/switchback/migrate"
)

// Version returns the goose version of database db: the highest version
// recorded as applied, 0 when none is (or goose never ran there). It needs
// no migrations directory.
func (r *Registry) Version(ctx context.Context, db string) (int64, error) {
	d, err := r.lookup(db)
	if err != nil {
		return 0, err
	}
	pool, err := d.connect(ctx)
	if err != nil {
		return 0, err
	}
	return d.version(ctx, pool)
}

func (d *database) version(ctx context.Context, pool *sql.DB) (int64, error) {
	var exists string
	switch d.target.Dialect {
	case migrate.Postgres:
		exists = "SELECT COUNT(*) FROM pg_tables WHERE schemaname = current_schema() AND tablename = $1"
	case migrate.MySQL:
		exists = "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?"
	default:
		exists = "SELECT COUNT(*) FROM sqlite_schema WHERE type = 'table' AND name = ?"
	}
	var n int
	if err := pool.QueryRowContext(ctx, exists, goose.DefaultTablename).Scan(&n); err != nil {
		return 0, fmt.Errorf("database %s: look up %s: %s", d.name, goose.DefaultTablename, redactErr(err))
	}
	if n == 0 {
		return 0, nil
	}
	var v sql.NullInt64
	if err := pool.QueryRowContext(ctx, "SELECT MAX(version_id) FROM "+goose.DefaultTablename).Scan(&v); err != nil {
		return 0, fmt.Errorf("database %s: read %s: %s", d.name, goose.DefaultTablename, redactErr(err))
	}
	return v.Int64, nil
}

// Applied returns the migrations of the directory applied to database db,
// oldest first, with their Phase and Irreversible flag.
func (r *Registry) Applied(ctx context.Context, db string) ([]migrate.Status, error) {
	d, err := r.lookup(db)
	if err != nil {
		return nil, err
	}
	m, err := d.migrator(ctx)
	if err != nil {
		return nil, err
	}
	defer m.Close()
	statuses, err := m.Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("database %s: %w", d.name, err)
	}
	return applied(statuses), nil
}

func applied(statuses []migrate.Status) []migrate.Status {
	out := []migrate.Status{}
	for _, s := range statuses {
		if s.State == stateApplied {
			out = append(out, s)
		}
	}
	return out
}

// stateApplied is goose's state of an applied migration, as
// migrate.Status reports it.
const stateApplied = string(goose.StateApplied)

// PlanDown returns the migrations a down of database db to version to
// would undo, newest first (none when the database is at to or below). It
// changes nothing. When one of them cannot be rolled back safely (a
// contract migration, one without a Down section, or one applied but
// missing from the directory) it returns a *RefusedError naming the
// newest such migration. A to that is neither 0 nor a migration's version
// is a *gateway.FieldError.
func (r *Registry) PlanDown(ctx context.Context, db string, to int64) ([]migrate.Status, error) {
	d, err := r.lookup(db)
	if err != nil {
		return nil, err
	}
	m, err := d.migrator(ctx)
	if err != nil {
		return nil, err
	}
	defer m.Close()
	return d.plan(ctx, m, to)
}

func (d *database) plan(ctx context.Context, m *migrate.Migrator, to int64) ([]migrate.Status, error) {
	statuses, err := m.Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("database %s: %w", d.name, err)
	}
	if err := checkTo(statuses, to); err != nil {
		return nil, err
	}
	for _, s := range statuses {
		if s.State == "half-applied" {
			return nil, fmt.Errorf("database %s: migration %d (%s) was left half-applied by an earlier run (%w); nothing was changed; "+
				"repair the schema, then run `switchback migrate --database %s resolve %d`", d.name, s.Version, s.File, migrate.ErrHalfApplied, d.name, s.Version)
		}
	}
	cur, err := d.version(ctx, m.DB())
	if err != nil {
		return nil, err
	}
	if cur > to && !slices.ContainsFunc(statuses, func(s migrate.Status) bool { return s.Version == cur }) {
		return nil, &RefusedError{Database: d.name, Version: cur,
			Reason: fmt.Sprintf("it is applied but has no file in the migrations directory %s, so its down is unknown", d.dir)}
	}
	plan := []migrate.Status{}
	for _, s := range slices.Backward(applied(statuses)) {
		if s.Version > to {
			plan = append(plan, s)
		}
	}
	for _, s := range plan {
		var reason string
		switch {
		case s.Phase == migrate.PhaseContract:
			reason = "it is a contract migration (-- +switchback contract): its up removed what older code may still read, and its down cannot bring back the data"
		case s.Irreversible:
			reason = "it has no Down section: rolling it back would only forget that it was applied and leave its changes in place"
		default:
			continue
		}
		e := &RefusedError{Database: d.name, Version: s.Version, File: s.File, Reason: reason, Irreversible: s.Irreversible}
		for _, p := range applied(statuses) {
			if p.Version < s.Version {
				e.Before = p.Version
			}
		}
		snaps, err := m.Snapshots(ctx)
		if err != nil {
			return nil, fmt.Errorf("database %s: %w", d.name, err)
		}
		if slices.ContainsFunc(snaps, func(x migrate.Snapshot) bool { return x.Version == s.Version }) {
			e.Restore = fmt.Sprintf("switchback migrate --database %s snapshot restore %d", d.name, s.Version)
		}
		return nil, e
	}
	return plan, nil
}

// checkTo refuses a version a down cannot stop at.
func checkTo(statuses []migrate.Status, to int64) error {
	if to == 0 || slices.ContainsFunc(statuses, func(s migrate.Status) bool { return s.Version == to }) {
		return nil
	}
	known := make([]string, 0, len(statuses)+1)
	known = append(known, "0 (roll back everything)")
	for _, s := range statuses {
		known = append(known, strconv.FormatInt(s.Version, 10))
	}
	return &gateway.FieldError{Field: "to", Value: strconv.FormatInt(to, 10),
		Want: "no migration has that version; accepted: " + strings.Join(known, ", ")}
}

// Down rolls database db back to version to after PlanDown's check, and
// returns the migrations it undid, newest first, now pending (AppliedAt
// still says when each had been applied). With
// restoreData, each undone migration that took data snapshots has them
// restored right after its own down, while the schema is the one they
// were taken from; a migration that names snapshot tables but has none
// recorded stops the down before anything changes. On an error part-way,
// what was undone is returned with the error.
func (r *Registry) Down(ctx context.Context, db string, to int64, restoreData bool) ([]migrate.Status, error) {
	d, err := r.lookup(db)
	if err != nil {
		return nil, err
	}
	d.down.Lock()
	defer d.down.Unlock()
	m, err := d.migrator(ctx)
	if err != nil {
		return nil, err
	}
	defer m.Close()
	plan, err := d.plan(ctx, m, to)
	if err != nil || len(plan) == 0 {
		return plan, err
	}
	if !restoreData {
		rep, err := m.Down(ctx, to)
		return undone(plan, rep), d.wrap(err)
	}
	snaps, err := m.Snapshots(ctx)
	if err != nil {
		return nil, fmt.Errorf("database %s: %w", d.name, err)
	}
	has := func(v int64) bool {
		return slices.ContainsFunc(snaps, func(x migrate.Snapshot) bool { return x.Version == v })
	}
	for _, s := range plan {
		if len(s.Snapshot) > 0 && !has(s.Version) {
			return nil, fmt.Errorf("database %s: migration %d (%s) names snapshot tables %s but no snapshot of them is recorded; nothing was changed; "+
				"roll down without restoring data, or restore those rows from a backup", d.name, s.Version, s.File, strings.Join(s.Snapshot, ", "))
		}
	}
	var done []migrate.Status
	for _, s := range plan {
		// One at a time: a snapshot is restored onto the schema it was
		// taken from, the one just before its migration's up.
		rep, err := m.Down(ctx, -1)
		got := undone(plan, rep)
		done = append(done, got...)
		if err != nil {
			return done, d.wrap(err)
		}
		if len(got) != 1 || got[0].Version != s.Version {
			return done, fmt.Errorf("database %s: rolled back %v instead of migration %d (%s); another migrator changed the database; stopped", d.name, versions(got), s.Version, s.File)
		}
		if !has(s.Version) {
			continue
		}
		if _, err := m.RestoreSnapshot(ctx, s.Version); err != nil {
			return done, fmt.Errorf("database %s: migration %d (%s) rolled back, but restoring its data snapshot failed: %w", d.name, s.Version, s.File, err)
		}
	}
	return done, nil
}

// undone returns the entries of plan that rep rolled back, now pending.
func undone(plan []migrate.Status, rep *migrate.Report) []migrate.Status {
	out := []migrate.Status{}
	if rep == nil {
		return out
	}
	for _, a := range rep.Applied {
		i := slices.IndexFunc(plan, func(s migrate.Status) bool { return s.Version == a.Version })
		if i < 0 {
			continue
		}
		s := plan[i]
		s.State = string(goose.StatePending)
		out = append(out, s)
	}
	return out
}

func versions(ss []migrate.Status) []int64 {
	out := make([]int64, len(ss))
	for i, s := range ss {
		out[i] = s.Version
	}
	return out
}

func (d *database) wrap(err error) error {
	if err == nil {
		return nil
	}
	var he *migrate.HalfAppliedError
	if errors.As(err, &he) {
		return fmt.Errorf("database %s: %w (use `switchback migrate --database %s resolve %d`)", d.name, err, d.name, he.Version)
	}
	return fmt.Errorf("database %s: %w", d.name, err)
}
