package migrate

import (
	"cmp"
	"context"
	"crypto/sha256"
	"database/sql"
	"database/sql/driver"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

var (
	// ErrNoSnapshot is returned by RestoreSnapshot for a version that has
	// no snapshot.
	ErrNoSnapshot = errors.New("migrate: no snapshot for that version")
	// ErrSnapshotRecord is returned by RestoreSnapshot when a row of the
	// snapshot table names a table or copy that switchback would not have
	// written; nothing is restored.
	ErrSnapshotRecord = errors.New("migrate: snapshot record names a table switchback did not write")
	// ErrRestoreForeignKeys is returned by RestoreSnapshot on SQLite when
	// the restored rows would break foreign key references; nothing is
	// restored.
	ErrRestoreForeignKeys = errors.New("migrate: restore would break foreign key references")
)

// Snapshot is the copy of one table taken before a migration's up.
type Snapshot struct {
	Version int64  `json:"version"`
	Table   string `json:"table"`
	// Copy is the table inside the database that holds the rows.
	Copy    string    `json:"copy"`
	Rows    int64     `json:"rows"`
	TakenAt time.Time `json:"taken_at"`
	// RevertedAt is when a down of Version succeeded after the copy was
	// taken; zero until then. Only a reverted snapshot is replaced by the
	// next up of Version (see takeSnapshot).
	RevertedAt time.Time `json:"reverted_at,omitzero"`
	// Kept is set in an up's report when the run did not take the copy
	// but kept the one an earlier, unsuccessful up of Version took.
	Kept bool `json:"kept,omitempty"`
}

// check refuses a record whose names takeSnapshot could not have written:
// restore puts them into SQL, and they come from a table anyone with
// write access to the database can change.
func (s Snapshot) check() error {
	if !identRE.MatchString(s.Table) {
		return fmt.Errorf("snapshot %d: table %q in %s: %w; accepted: letters, digits and _",
			s.Version, s.Table, snapshotsTable, ErrSnapshotRecord)
	}
	if want := snapshotName(s.Version, s.Table); s.Copy != want || !identRE.MatchString(s.Copy) {
		return fmt.Errorf("snapshot %d of %s: copy %q in %s: %w; accepted: %q",
			s.Version, s.Table, s.Copy, snapshotsTable, ErrSnapshotRecord, want)
	}
	return nil
}

// snapshotName returns the copy table's name, within the 63 characters
// PostgreSQL allows.
func snapshotName(version int64, table string) string {
	name := fmt.Sprintf("%s%d_%s", snapPrefix, version, strings.ToLower(table))
	if len(name) <= 63 {
		return name
	}
	sum := sha256.Sum256([]byte(name))
	return name[:54] + "_" + hex.EncodeToString(sum[:4])
}

// takeSnapshot copies mig's snapshot tables with CREATE TABLE AS. On
// PostgreSQL and SQLite the copies and their metadata commit together.
//
// An existing snapshot of a table for mig's version is replaced only when a
// down of the version succeeded after it was taken (RevertedAt is set);
// otherwise it is kept, and returned with Kept set. Such a snapshot was
// taken by an up that failed or was interrupted, and an up that could not
// be rolled back as a whole (NO TRANSACTION, or DDL on MySQL) may have
// changed rows without changing the schema: the copy from before it is then
// the only copy of the rows as they were. An up that the database did roll
// back drops the copies it took (dropSnapshots), so that its retry copies
// the rows as they are by then.
func (m *Migrator) takeSnapshot(ctx context.Context, mig *Migration) ([]Snapshot, error) {
	d := m.target.Dialect
	at := m.cfg.now().UTC()
	existing, err := m.snapshots(ctx, mig.Version)
	if err != nil {
		return nil, err
	}
	var out []Snapshot
	err = m.inTx(ctx, d != MySQL, func(ex execer) error {
		for _, table := range mig.Snapshot {
			if i := slices.IndexFunc(existing, func(s Snapshot) bool { return s.Table == table }); i >= 0 && existing[i].RevertedAt.IsZero() {
				s := existing[i]
				s.Kept = true
				out = append(out, s)
				continue
			}
			s := Snapshot{Version: mig.Version, Table: table, Copy: snapshotName(mig.Version, table), TakenAt: at}
			stmts := []string{
				"DROP TABLE IF EXISTS " + quote(d, s.Copy),
				"CREATE TABLE " + quote(d, s.Copy) + " AS SELECT * FROM " + quote(d, table),
			}
			for _, q := range stmts {
				if _, err := ex.ExecContext(ctx, q); err != nil {
					return fmt.Errorf("snapshot table %s: %w", table, err)
				}
			}
			if err := ex.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+quote(d, s.Copy)).Scan(&s.Rows); err != nil {
				return fmt.Errorf("count snapshot of %s: %w", table, err)
			}
			if _, err := ex.ExecContext(ctx, m.q("DELETE FROM "+snapshotsTable+" WHERE version = ? AND table_name = ?"), s.Version, s.Table); err != nil {
				return fmt.Errorf("snapshot metadata: %w", err)
			}
			if _, err := ex.ExecContext(ctx, m.q("INSERT INTO "+snapshotsTable+" (version, table_name, snapshot_table, row_count, taken_at) VALUES (?, ?, ?, ?, ?)"),
				s.Version, s.Table, s.Copy, s.Rows, at.Format(time.RFC3339Nano)); err != nil {
				return fmt.Errorf("snapshot metadata: %w", err)
			}
			out = append(out, s)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// dropSnapshots removes the copies in snaps that were taken, not kept, by
// an up that the database then rolled back as a whole: the rows are as
// they were, so the copies hold nothing that a retry should keep.
func (m *Migrator) dropSnapshots(ctx context.Context, snaps []Snapshot) error {
	d := m.target.Dialect
	return m.inTx(ctx, d != MySQL, func(ex execer) error {
		for _, s := range snaps {
			if s.Kept {
				continue
			}
			if _, err := ex.ExecContext(ctx, "DROP TABLE IF EXISTS "+quote(d, s.Copy)); err != nil {
				return fmt.Errorf("drop snapshot of %s: %w", s.Table, err)
			}
			if _, err := ex.ExecContext(ctx, m.q("DELETE FROM "+snapshotsTable+" WHERE version = ? AND table_name = ?"), s.Version, s.Table); err != nil {
				return fmt.Errorf("drop snapshot of %s: %w", s.Table, err)
			}
		}
		return nil
	})
}

// markReverted records that a down of version succeeded, so that the next
// up of version replaces its snapshots. It runs after goose's down: a crash
// in between leaves them kept, which loses no copy.
func (m *Migrator) markReverted(ctx context.Context, version int64) error {
	_, err := m.db.ExecContext(ctx, m.q("UPDATE "+snapshotsTable+" SET reverted_at = ? WHERE version = ?"),
		m.cfg.now().UTC().Format(time.RFC3339Nano), version)
	if err != nil {
		return fmt.Errorf("snapshot metadata: mark %d rolled back: %w", version, err)
	}
	return nil
}

// Snapshots lists every snapshot in the database, by version and table.
func (m *Migrator) Snapshots(ctx context.Context) ([]Snapshot, error) {
	return m.snapshots(ctx, -1)
}

// snapshots lists the snapshots of version, or of every version when
// version is negative; none when the table does not exist yet.
func (m *Migrator) snapshots(ctx context.Context, version int64) ([]Snapshot, error) {
	cols, err := m.columns(ctx, snapshotsTable)
	if err != nil || len(cols) == 0 {
		return nil, err
	}
	// A table created before reverted_at existed gets the column from the
	// next up or down (ensureInternal); until then nothing was reverted.
	reverted := "NULL"
	if slices.ContainsFunc(cols, func(c column) bool { return strings.EqualFold(c.name, "reverted_at") }) {
		reverted = "reverted_at"
	}
	q := "SELECT version, table_name, snapshot_table, row_count, taken_at, " + reverted + " FROM " + snapshotsTable
	var args []any
	if version >= 0 {
		q += " WHERE version = ?"
		args = append(args, version)
	}
	var out []Snapshot
	err = queryRows(ctx, m.db, m.q(q+" ORDER BY version, table_name"), func(r *sql.Rows) error {
		var s Snapshot
		var at string
		var rev sql.NullString
		if err := r.Scan(&s.Version, &s.Table, &s.Copy, &s.Rows, &at, &rev); err != nil {
			return err
		}
		s.TakenAt, _ = time.Parse(time.RFC3339Nano, at)
		if rev.Valid {
			s.RevertedAt, _ = time.Parse(time.RFC3339Nano, rev.String)
		}
		out = append(out, s)
		return nil
	}, args...)
	if err != nil {
		return nil, fmt.Errorf("list snapshots: %w", err)
	}
	// Sorted here, not by the database's collation, so every dialect
	// lists alike.
	slices.SortFunc(out, func(a, b Snapshot) int {
		return cmp.Or(cmp.Compare(a.Version, b.Version), strings.Compare(a.Table, b.Table))
	})
	// Restore in the order the migration named the tables: parents first.
	if mig := m.migration(version); mig != nil {
		slices.SortStableFunc(out, func(a, b Snapshot) int {
			return slices.Index(mig.Snapshot, a.Table) - slices.Index(mig.Snapshot, b.Table)
		})
	}
	return out, nil
}

// Restored is the outcome of restoring one table.
type Restored struct {
	Table string `json:"table"`
	Rows  int64  `json:"rows"`
}

// RestoreSnapshot replaces the rows of every table snapshotted before
// version's up with the snapshot's rows, in one transaction. Every column
// of the snapshot must exist in the table (roll the schema back first);
// columns added since keep their defaults, generated columns are
// recomputed. Tables are emptied children first (the reverse of the order
// in the annotation) and filled parents first.
//
// Emptying a table fires no ON DELETE action: on SQLite and MySQL foreign
// key enforcement is off for the restore's connection, and PostgreSQL's
// TRUNCATE refuses when a table outside the snapshot references one inside
// it. On SQLite with foreign keys on, the restore is rolled back with
// ErrRestoreForeignKeys if any row of a restored table, or of a table that
// references one, is left referencing a missing row.
func (m *Migrator) RestoreSnapshot(ctx context.Context, version int64) ([]Restored, error) {
	if version < 1 {
		return nil, fmt.Errorf("snapshot restore %d: accepted: a migration version of 1 or more", version)
	}
	var out []Restored
	err := m.withLock(ctx, nil, func(ctx context.Context) error {
		snaps, err := m.snapshots(ctx, version)
		if err != nil {
			return err
		}
		if len(snaps) == 0 {
			return fmt.Errorf("snapshot restore %d: %w; `switchback migrate snapshot list` shows the versions that have one", version, ErrNoSnapshot)
		}
		for _, s := range snaps {
			if err := s.check(); err != nil {
				return fmt.Errorf("snapshot restore %d: %w", version, err)
			}
		}
		plans := make([]string, len(snaps))
		for i, s := range snaps {
			if plans[i], err = m.restoreColumns(ctx, s); err != nil {
				return err
			}
		}
		out, err = m.restore(ctx, snaps, plans)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func (m *Migrator) restore(ctx context.Context, snaps []Snapshot, cols []string) (_ []Restored, err error) {
	d := m.target.Dialect
	conn, err := m.db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}
	defer conn.Close()
	// Foreign key enforcement is turned off on this connection so that
	// emptying a parent fires no ON DELETE CASCADE or SET NULL on a table
	// outside the snapshot (SQLite's defer_foreign_keys only defers the
	// checks, not the actions), and so that a self-reference or a cycle
	// does not trip a check half-way through the copy. Both settings only
	// take effect outside a transaction, hence before BEGIN.
	var fkOn bool
	switch d {
	case MySQL:
		if _, err := conn.ExecContext(ctx, "SET FOREIGN_KEY_CHECKS = 0"); err != nil {
			return nil, fmt.Errorf("restore: %w", err)
		}
		defer func() { err = errors.Join(err, resetSession(ctx, conn, "SET FOREIGN_KEY_CHECKS = 1")) }()
	case SQLite:
		if err := conn.QueryRowContext(ctx, "PRAGMA foreign_keys").Scan(&fkOn); err != nil {
			return nil, fmt.Errorf("restore: %w", err)
		}
		if fkOn {
			if _, err := conn.ExecContext(ctx, "PRAGMA foreign_keys = OFF"); err != nil {
				return nil, fmt.Errorf("restore: %w", err)
			}
			defer func() { err = errors.Join(err, resetSession(ctx, conn, "PRAGMA foreign_keys = ON")) }()
		}
	}
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}
	defer tx.Rollback()
	if d == Postgres {
		// TRUNCATE refuses, rather than cascades, when a table outside the
		// snapshot references one inside it.
		names := make([]string, len(snaps))
		for i, s := range snaps {
			names[i] = quote(d, s.Table)
		}
		if _, err := tx.ExecContext(ctx, "TRUNCATE "+strings.Join(names, ", ")); err != nil {
			return nil, fmt.Errorf("restore: empty %s: %w", strings.Join(names, ", "), err)
		}
	} else {
		for i := len(snaps) - 1; i >= 0; i-- {
			if _, err := tx.ExecContext(ctx, "DELETE FROM "+quote(d, snaps[i].Table)); err != nil {
				return nil, fmt.Errorf("restore: empty %s: %w", snaps[i].Table, err)
			}
		}
	}
	var out []Restored
	for i, s := range snaps {
		overriding := ""
		if d == Postgres {
			overriding = " OVERRIDING SYSTEM VALUE"
		}
		res, err := tx.ExecContext(ctx, fmt.Sprintf("INSERT INTO %s (%s)%s SELECT %s FROM %s",
			quote(d, s.Table), cols[i], overriding, cols[i], quote(d, s.Copy)))
		if err != nil {
			return nil, fmt.Errorf("restore %s: %w", s.Table, err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return nil, fmt.Errorf("restore %s: %w", s.Table, err)
		}
		if n != s.Rows {
			return nil, fmt.Errorf("restore %s: copied %d rows, snapshot recorded %d; rolled back", s.Table, n, s.Rows)
		}
		out = append(out, Restored{Table: s.Table, Rows: n})
	}
	if d == SQLite && fkOn {
		if err := sqliteForeignKeyCheck(ctx, tx, snaps); err != nil {
			return nil, err
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("restore: commit: %w", err)
	}
	return out, nil
}

// resetSession undoes a session setting made for the restore before conn
// goes back to the pool. If that fails, the connection is discarded rather
// than handed to the next user with foreign keys off.
func resetSession(ctx context.Context, conn *sql.Conn, stmt string) error {
	if _, err := conn.ExecContext(context.WithoutCancel(ctx), stmt); err != nil {
		conn.Raw(func(any) error { return driver.ErrBadConn })
		return fmt.Errorf("restore: %s: %w", stmt, err)
	}
	return nil
}

// sqliteForeignKeyCheck runs PRAGMA foreign_key_check on the restored
// tables and on every table whose foreign keys reference one of them: the
// only rows the restore can have left referencing a missing row. It is not
// run when foreign keys are off for the database URL: SQLite then enforces
// nothing on that connection, and such a database may hold violations that
// have nothing to do with the restore.
func sqliteForeignKeyCheck(ctx context.Context, tx *sql.Tx, snaps []Snapshot) error {
	restored := make([]string, len(snaps))
	for i, s := range snaps {
		restored[i] = strings.ToLower(s.Table)
	}
	tables := slices.Clone(restored)
	err := queryRows(ctx, tx, `SELECT DISTINCT m.name, lower(f."table") FROM sqlite_schema AS m, pragma_foreign_key_list(m.name) AS f
		WHERE m.type = 'table'`, func(r *sql.Rows) error {
		var child, parent string
		if err := r.Scan(&child, &parent); err != nil {
			return err
		}
		if slices.Contains(restored, parent) && !slices.Contains(tables, strings.ToLower(child)) {
			tables = append(tables, strings.ToLower(child))
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("restore: list foreign keys: %w", err)
	}
	const shown = 5
	var bad []string
	n := 0
	for _, t := range tables {
		err := queryRows(ctx, tx, `SELECT "table", rowid, parent FROM pragma_foreign_key_check(?)`, func(r *sql.Rows) error {
			var table, parent string
			var rowid sql.NullInt64
			if err := r.Scan(&table, &rowid, &parent); err != nil {
				return err
			}
			if n++; n <= shown {
				row := "a row"
				if rowid.Valid {
					row = fmt.Sprintf("rowid %d", rowid.Int64)
				}
				bad = append(bad, fmt.Sprintf("%s %s references a missing row of %s", table, row, parent))
			}
			return nil
		}, t)
		if err != nil {
			return fmt.Errorf("restore: foreign_key_check %s: %w", t, err)
		}
	}
	if n == 0 {
		return nil
	}
	more := ""
	if n > shown {
		more = fmt.Sprintf(" and %d more", n-shown)
	}
	return fmt.Errorf("%w: %s%s; nothing was restored: put back the referenced rows or delete the referencing ones, then restore again",
		ErrRestoreForeignKeys, strings.Join(bad, "; "), more)
}

// restoreColumns returns the quoted column list to copy back for s, or an
// error naming the snapshot columns the table no longer has.
func (m *Migrator) restoreColumns(ctx context.Context, s Snapshot) (string, error) {
	snapCols, err := m.columns(ctx, s.Copy)
	if err != nil {
		return "", err
	}
	liveList, err := m.columns(ctx, s.Table)
	if err != nil {
		return "", err
	}
	live := make(map[string]bool, len(liveList))
	for _, c := range liveList {
		live[c.name] = c.generated
	}
	if len(live) == 0 {
		return "", fmt.Errorf("snapshot restore %d: table %s does not exist; roll the schema back to version %d first", s.Version, s.Table, s.Version-1)
	}
	var missing, cols []string
	for _, c := range snapCols {
		generated, ok := live[c.name]
		switch {
		case !ok:
			missing = append(missing, c.name)
		case !generated:
			cols = append(cols, quoteColumn(m.target.Dialect, c.name))
		}
	}
	if len(missing) > 0 {
		return "", fmt.Errorf("snapshot restore %d: table %s has no column %s that the snapshot holds; roll the schema back (`switchback migrate down --to %d`) first",
			s.Version, s.Table, strings.Join(missing, ", "), s.Version-1)
	}
	return strings.Join(cols, ", "), nil
}

type column struct {
	name      string
	generated bool
}

// columns lists a table's columns in order; as a map for lookups.
func (m *Migrator) columns(ctx context.Context, table string) (cols columnList, err error) {
	var q string
	switch m.target.Dialect {
	case Postgres:
		q = `SELECT column_name, is_generated = 'ALWAYS' FROM information_schema.columns
			WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position`
		table = strings.ToLower(table)
	case MySQL:
		q = `SELECT COLUMN_NAME, EXTRA LIKE '%GENERATED%' FROM information_schema.COLUMNS
			WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION`
	default:
		q = `SELECT name, hidden IN (2, 3) FROM pragma_table_xinfo(?) ORDER BY cid`
	}
	err = queryRows(ctx, m.db, q, func(r *sql.Rows) error {
		var c column
		if err := r.Scan(&c.name, &c.generated); err != nil {
			return err
		}
		cols = append(cols, c)
		return nil
	}, table)
	if err != nil {
		return nil, fmt.Errorf("columns of %s: %w", table, err)
	}
	return cols, nil
}

type columnList []column

// quoteColumn quotes a column name as the database reported it, doubling
// any quote character inside it.
func quoteColumn(d Dialect, name string) string {
	if d == MySQL {
		return "`" + strings.ReplaceAll(name, "`", "``") + "`"
	}
	return `"` + strings.ReplaceAll(name, `"`, `""`) + `"`
}

// execer is what both *sql.DB and *sql.Tx offer.
type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// inTx runs fn in a transaction when tx is true, directly on the database
// otherwise.
func (m *Migrator) inTx(ctx context.Context, tx bool, fn func(execer) error) error {
	if !tx {
		return fn(m.db)
	}
	t, err := m.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	if err := fn(t); err != nil {
		return errors.Join(err, t.Rollback())
	}
	if err := t.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}
