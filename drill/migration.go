package drill

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"sync"

	"github.com/a8e2c47e/switchback/migrate"
	"github.com/a8e2c47e/switchback/runbook"
)

// migrations are the drill's own: a table, an expand migration and a
// data migration with a snapshot, so the drill never touches an
// application's tables or migration history.
//
//go:embed migrations/*.sql
var migrations embed.FS

// Migration drills the rollback of an expand migration and a data
// migration: on a database with rows it applies both, then runs the
// runbook's `switchback migrate down` and `switchback migrate snapshot
// restore`, and compares the schema dump and a checksum of the snapshotted
// table's rows with the ones before.
//
// Only the manual trigger applies: the guard watches requests through the
// gateway, and no fallback moves a schema.
type Migration struct {
	// Migrations replaces the drill's migrations (tests break a down on
	// purpose with it). They must be versions 1 (creates Table), 2 (an
	// expand) and 3 (a data migration snapshotting Table).
	Migrations fs.FS
	// Rows is how many rows the table gets before the migrations (default
	// 100,000).
	Rows int

	dir     string // the migrations on disk, for the commands' --dir
	dialect migrate.Dialect

	mu sync.Mutex // guards probe against Cleanup closing it
	// probe is a read-only connection for Probe and Capture; the
	// migrations run through their own, as the commands would.
	probe *migrate.Migrator
}

// The drill's versions: Prepare applies base, Break goes up to top, the
// rollback comes back to base through snap's snapshot.
const (
	migrationTable       = "drill_accounts"
	migrationBase  int64 = 1
	migrationTop   int64 = 3
	migrationSnap  int64 = 3
)

// Name implements Pattern.
func (*Migration) Name() string { return "migration" }

// Applicable implements Pattern.
func (*Migration) Applicable(_ context.Context, env *Env, t Trigger) error {
	if t == Guard {
		return fmt.Errorf("%w: the guard watches requests through the gateway, not schemas, and no fallback moves one; "+
			"a migration is rolled back by hand with `switchback migrate down` and `switchback migrate snapshot restore`", ErrNotApplicable)
	}
	if env.Database == "" && env.ReleaseDatabase != "" && env.Target != "sandbox" {
		return fmt.Errorf("%w: --database %s names a gateway's database, which the release drill uses; the migration drill brings its own migrations "+
			"and needs a database of its own by address: give --database URL", ErrNotApplicable, env.ReleaseDatabase)
	}
	if env.Database == "" {
		return fmt.Errorf("%w: no database to migrate; give --database", ErrNotApplicable)
	}
	return nil
}

func (p *Migration) fsys() fs.FS {
	if p.Migrations != nil {
		return p.Migrations
	}
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		panic("drill: embedded migrations: " + err.Error()) // the directory is embedded above
	}
	return sub
}

// Prepare creates the table at version 1 and fills it, refusing a
// database whose migrations are not the drill's.
func (p *Migration) Prepare(ctx context.Context, env *Env) error {
	t, err := migrate.ParseTarget(env.Database)
	if err != nil {
		return err
	}
	p.dialect = t.Dialect
	if p.dir, err = os.MkdirTemp("", "switchback-drill-migrations-"); err != nil {
		return fmt.Errorf("migration drill: %w", err)
	}
	if err := os.CopyFS(p.dir, p.fsys()); err != nil {
		return fmt.Errorf("migration drill: write migrations: %w", err)
	}
	m, err := migrate.Open(ctx, env.Database, os.DirFS(p.dir))
	if err != nil {
		return fmt.Errorf("migration drill: %w", err)
	}
	defer m.Close()
	status, err := m.Status(ctx)
	if err != nil {
		return fmt.Errorf("migration drill: %w", err)
	}
	for _, s := range status {
		if s.State != "pending" {
			return fmt.Errorf("migration drill: database %s already has migration %d %s; the drill needs a database of its own", t.URL, s.Version, s.State)
		}
	}
	if ok, err := hasTable(ctx, t.Dialect, m.DB(), migrationTable); err != nil {
		return fmt.Errorf("migration drill: %w", err)
	} else if ok {
		return fmt.Errorf("migration drill: database %s already has a table %s the drill did not create; the drill needs a database of its own", t.URL, migrationTable)
	}
	if _, err := m.Up(ctx, migrationBase); err != nil {
		return fmt.Errorf("migration drill: %w", err)
	}
	if err := fillAccounts(ctx, m.DB(), cmpOr(p.Rows, 100_000)); err != nil {
		return err
	}
	probe, err := migrate.Open(ctx, env.Database, os.DirFS(p.dir), migrate.WithReadOnly())
	if err != nil {
		return fmt.Errorf("migration drill: %w", err)
	}
	p.mu.Lock()
	p.probe = probe
	p.mu.Unlock()
	return nil
}

// fillAccounts inserts n rows in one transaction, a thousand a statement:
// a row a statement would make the fixture, not the drill, the slow part.
// Mixed-case emails are what the data migration changes.
func fillAccounts(ctx context.Context, db *sql.DB, n int) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("migration drill: fill %s: %w", migrationTable, err)
	}
	defer tx.Rollback()
	plans := []string{"free", "team", "business"}
	var b strings.Builder
	for i := 1; i <= n; {
		b.Reset()
		b.WriteString("INSERT INTO " + migrationTable + " (id, email, plan, confirmed) VALUES ")
		for j := 0; j < 1000 && i <= n; j, i = j+1, i+1 {
			if j > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, "(%d,'User%d@Example.COM','%s',%d)", i, i, plans[i%len(plans)], i%2)
		}
		if _, err := tx.ExecContext(ctx, b.String()); err != nil {
			return fmt.Errorf("migration drill: fill %s: %w", migrationTable, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("migration drill: fill %s: %w", migrationTable, err)
	}
	return nil
}

// Capture implements Pattern: the schema dump and the checksum of the
// snapshotted table's rows.
func (p *Migration) Capture(ctx context.Context, _ *Env) (State, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.probe == nil {
		return nil, errors.New("migration drill: not prepared")
	}
	db := p.probe.DB()
	schema, err := migrate.DumpSchema(ctx, p.dialect, db)
	if err != nil {
		return nil, fmt.Errorf("migration drill: %w", err)
	}
	var cols []string
	for _, o := range schema.Objects {
		if c, ok := strings.CutPrefix(o.Key, "column "+migrationTable+"."); ok {
			cols = append(cols, c)
		}
	}
	sum, err := tableChecksum(ctx, db, migrationTable, cols)
	if err != nil {
		return nil, err
	}
	return State{"schema": schema.String(), "rows " + migrationTable: sum}, nil
}

// tableChecksum hashes every row of table, in id order, with the column
// names: "100000 rows, sha256 …". Values are hashed as the driver returns
// them, so two checksums compare on one database, not across dialects.
//
// The columns are named, from the schema dump, rather than SELECT *: the
// same text with another set of columns is a cached plan that PostgreSQL
// refuses to reuse ("cached plan must not change result type").
func tableChecksum(ctx context.Context, db *sql.DB, table string, cols []string) (string, error) {
	if len(cols) == 0 {
		return "no table " + table, nil
	}
	rows, err := db.QueryContext(ctx, "SELECT "+strings.Join(cols, ", ")+" FROM "+table+" ORDER BY id")
	if err != nil {
		return "", fmt.Errorf("migration drill: checksum %s: %w", table, err)
	}
	defer rows.Close()
	h := sha256.New()
	fmt.Fprintf(h, "%q\n", cols)
	vals := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	n := 0
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return "", fmt.Errorf("migration drill: checksum %s: %w", table, err)
		}
		for _, v := range vals {
			if b, ok := v.([]byte); ok {
				v = string(b)
			}
			fmt.Fprintf(h, "%T:%v\x1f", v, v)
		}
		h.Write([]byte{'\n'})
		n++
	}
	if err := rows.Err(); err != nil {
		return "", fmt.Errorf("migration drill: checksum %s: %w", table, err)
	}
	return fmt.Sprintf("columns %s\n%d rows, sha256 %s", strings.Join(cols, ", "), n, hex.EncodeToString(h.Sum(nil))), nil
}

// Break applies the expand migration and the data migration.
func (p *Migration) Break(ctx context.Context, env *Env, _ Trigger) error {
	m, err := migrate.Open(ctx, env.Database, os.DirFS(p.dir))
	if err != nil {
		return fmt.Errorf("migration drill: %w", err)
	}
	defer m.Close()
	if _, err := m.Up(ctx, migrationTop); err != nil {
		return fmt.Errorf("migration drill: %w", err)
	}
	return nil
}

// Rollback implements Pattern: the runbook's commands.
func (p *Migration) Rollback(env *Env) []Command {
	return Commands(runbook.Rollback("migration", p.params(env)))
}

func (p *Migration) params(env *Env) runbook.Params {
	return runbook.Params{Database: env.Database, MigrationsDir: p.dir, DownTo: migrationBase, Snapshots: []int64{migrationSnap}}
}

// Probe implements Pattern: the schema is back when the database's
// migration version is the one before the drill; whether the rows and
// the schema are as they were is the state comparison's to say.
func (p *Migration) Probe(ctx context.Context, _ *Env) Answer {
	p.mu.Lock()
	probe := p.probe
	p.mu.Unlock()
	if probe == nil {
		return Answer{Failed: true, Detail: "not prepared"}
	}
	status, err := probe.Status(ctx)
	if err != nil {
		return Answer{Failed: true, Detail: err.Error()}
	}
	var applied int64
	for _, s := range status {
		if s.State != "pending" && s.Version > applied {
			applied = s.Version
		}
		if s.State == "half-applied" {
			return Answer{Detail: fmt.Sprintf("migration %d half-applied", s.Version)}
		}
	}
	return Answer{Good: applied == migrationBase, Detail: "migration version " + strconv.FormatInt(applied, 10)}
}

// Cleanup rolls every drill migration down, which drops the table, and
// removes the migrations from disk.
func (p *Migration) Cleanup(ctx context.Context, env *Env) error {
	p.mu.Lock()
	probe := p.probe
	p.probe = nil
	p.mu.Unlock()
	var errs []error
	if probe != nil {
		errs = append(errs, probe.Close())
	}
	if p.dir == "" {
		return errors.Join(errs...)
	}
	if m, err := migrate.Open(ctx, env.Database, os.DirFS(p.dir)); err != nil {
		errs = append(errs, err)
	} else {
		if _, err := m.Down(ctx, 0); err != nil {
			errs = append(errs, fmt.Errorf("migration drill: clean up: %w", err))
		}
		errs = append(errs, m.Close())
	}
	errs = append(errs, os.RemoveAll(p.dir))
	return errors.Join(errs...)
}

// hasTable reports whether table exists, outside the drill's migrations.
func hasTable(ctx context.Context, d migrate.Dialect, db *sql.DB, table string) (bool, error) {
	schema, err := migrate.DumpSchema(ctx, d, db)
	if err != nil {
		return false, err
	}
	for _, o := range schema.Objects {
		if o.Key == "table "+table {
			return true, nil
		}
	}
	return false, nil
}

func cmpOr(n, def int) int {
	if n <= 0 {
		return def
	}
	return n
}

var _ Pattern = (*Migration)(nil)
