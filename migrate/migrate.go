// Package migrate runs reversible schema migrations on goose's Provider and
// enforces Switchback's rollback rules: every down is proven to restore the
// schema its up started from (Verify), destructive statements only appear
// in contract migrations whose dropped objects were unused for 30 days
// (Lint), and data migrations snapshot the rows they touch (Snapshot).
//
// SQLite (modernc), PostgreSQL (pgx) and MySQL/MariaDB are supported,
// chosen by a URL (Open: sqlite:./app.db, postgres://…, mysql://…) or
// given as an open *sql.DB and its Dialect (OpenDB). A migration without
// a Down section is refused by Up and Down unless WithAllowIrreversible;
// a password in a URL never reaches a message (Redact).
//
// Files: migrate.go (Open, the lock), options.go, run.go (Up, Down,
// Status, the journal), verify.go, snapshot.go, source.go (parsing
// migration files), lint.go (the rules), ddl.go (the DDL simulator lint
// replays Up sections through), narrowing.go (type changes), sqltok.go,
// usage.go (query logs), schema*.go (schema dumps), dburl.go and
// redact.go (database addresses), cli.go and cli_commands.go.
//
// Of this module migrate imports cmdline and printable only; it knows
// nothing of gateways, Caddy or etcd.
package migrate

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"

	// Database drivers, registered as "sqlite", "pgx" and "mysql".
	_ "github.com/go-sql-driver/mysql"
	_ "github.com/jackc/pgx/v5/stdlib"
	_ "modernc.org/sqlite"
)

// Migrator applies and rolls back the migrations of one directory on one
// database. It is not safe for concurrent use; concurrent Migrators, in
// this process or others, exclude each other with a database lock.
type Migrator struct {
	target     Target
	db         *sql.DB
	ownsDB     bool // opened by Open, so closed by Close
	provider   *goose.Provider
	locker     lock.SessionLocker
	migrations []*Migration
	cfg        config
}

var (
	// ErrNoDatabase is returned by a read-only Open (WithReadOnly) of a
	// SQLite file that does not exist: reading must not create it.
	ErrNoDatabase = errors.New("migrate: database does not exist")
	// ErrReadOnly is returned by Up, Down, Resolve and RestoreSnapshot on a
	// Migrator opened WithReadOnly.
	ErrReadOnly = errors.New("migrate: opened read-only")
)

// Open connects to the database named by dbURL (see ParseTarget) and
// prepares the migrations in fsys. Close closes the connection.
func Open(ctx context.Context, dbURL string, fsys fs.FS, opts ...Option) (*Migrator, error) {
	t, err := ParseTarget(dbURL)
	if err != nil {
		return nil, err
	}
	return open(ctx, t, fsys, opts...)
}

func open(ctx context.Context, t Target, fsys fs.FS, opts ...Option) (*Migrator, error) {
	cfg, err := newConfig(useMigrator, opts)
	if err != nil {
		return nil, err
	}
	migrations, err := LoadMigrations(fsys)
	if err != nil {
		return nil, err
	}
	dsn := t.DSN
	if t.Dialect == SQLite && cfg.readOnly {
		if dsn, err = readOnlySQLite(t); err != nil {
			return nil, err
		}
	}
	db, err := sql.Open(t.Dialect.driver(), dsn)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", t.Dialect, err)
	}
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("connect to %s: %w", t.URL, err)
	}
	m, err := newMigrator(t, db, fsys, migrations, cfg)
	if err != nil {
		db.Close()
		return nil, err
	}
	m.ownsDB = true
	return m, nil
}

// readOnlySQLite returns a DSN that opens t's file read-only, or
// ErrNoDatabase when there is no file: opening it for writing would create
// it.
func readOnlySQLite(t Target) (string, error) {
	if _, err := os.Stat(t.Database); errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("--db %q: no file %s (%w); reading does not create one; accepted: an existing SQLite file (up creates it)", t.URL, t.Database, ErrNoDatabase)
	} else if err != nil {
		return "", fmt.Errorf("--db %q: %w", t.URL, err)
	}
	// SQLite reads mode=ro from a file: URI, which must escape what a
	// path may hold and a URI may not.
	path := strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(t.Database)
	dsn := "file:" + path + "?mode=ro"
	if _, q, ok := strings.Cut(t.DSN, "?"); ok {
		// A read-only connection takes no write lock to begin with.
		dsn += "&" + strings.Replace(q, "_txlock=immediate", "_txlock=deferred", 1)
	}
	return dsn, nil
}

// OpenDB prepares the migrations in fsys for a database the caller has
// already opened, as goose's NewProvider does. dialect says what db is
// (SQLite, Postgres or MySQL); a SQLite database must be a file, since
// the migration lock is a file beside it. Close leaves db open: it
// belongs to the caller.
func OpenDB(ctx context.Context, db *sql.DB, dialect Dialect, fsys fs.FS, opts ...Option) (*Migrator, error) {
	if db == nil {
		return nil, errors.New("OpenDB: db must not be nil")
	}
	switch dialect {
	case SQLite, Postgres, MySQL:
	default:
		return nil, fmt.Errorf("OpenDB: dialect %q: accepted: %s, %s, %s", dialect, SQLite, Postgres, MySQL)
	}
	cfg, err := newConfig(useMigrator, opts)
	if err != nil {
		return nil, err
	}
	migrations, err := LoadMigrations(fsys)
	if err != nil {
		return nil, err
	}
	if err := db.PingContext(ctx); err != nil {
		return nil, fmt.Errorf("connect to %s: %w", dialect, err)
	}
	t := Target{Dialect: dialect, URL: string(dialect)}
	if dialect == SQLite {
		if t.Database, err = sqliteFile(ctx, db); err != nil {
			return nil, err
		}
		t.URL = "sqlite:" + t.Database
	}
	return newMigrator(t, db, fsys, migrations, cfg)
}

// sqliteFile returns the file of db's main database.
func sqliteFile(ctx context.Context, db *sql.DB) (string, error) {
	var file string
	err := queryRows(ctx, db, "PRAGMA database_list", func(r *sql.Rows) error {
		var seq int
		var name, f string
		if err := r.Scan(&seq, &name, &f); err != nil {
			return err
		}
		if name == "main" {
			file = f
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("OpenDB: find the SQLite file: %w", err)
	}
	if file == "" {
		return "", errors.New("OpenDB: the SQLite database is in memory or temporary; accepted: a database file, since the migration lock is a file beside it")
	}
	return file, nil
}

func newMigrator(t Target, db *sql.DB, fsys fs.FS, migrations []*Migration, cfg config) (*Migrator, error) {
	// The lock is held on a connection of our own, so goose itself runs
	// without one: goose's locker on a second connection would wait for
	// ours forever.
	p, err := goose.NewProvider(t.Dialect.goose(), db, fsys, goose.WithDisableGlobalRegistry(true))
	if err != nil {
		return nil, fmt.Errorf("goose provider: %w", err)
	}
	locker, err := newLocker(t, cfg.lockTimeout)
	if err != nil {
		return nil, fmt.Errorf("locker: %w", err)
	}
	return &Migrator{target: t, db: db, provider: p, locker: locker, migrations: migrations, cfg: cfg}, nil
}

// Close closes the database connection Open made; a database passed to
// OpenDB stays open.
func (m *Migrator) Close() error {
	if !m.ownsDB {
		return nil
	}
	return m.db.Close()
}

// DB returns the database handle, for callers that inspect what a
// migration did.
func (m *Migrator) DB() *sql.DB { return m.db }

// Migrations returns the parsed migrations in version order.
func (m *Migrator) Migrations() []*Migration { return m.migrations }

func (m *Migrator) migration(v int64) *Migration {
	i := slices.IndexFunc(m.migrations, func(x *Migration) bool { return x.Version == v })
	if i < 0 {
		return nil
	}
	return m.migrations[i]
}

// checkVersion validates a --to value. zero, if not empty, says what 0
// means; otherwise 0 is refused.
func (m *Migrator) checkVersion(flag string, v int64, zero string) error {
	if (v == 0 && zero != "") || m.migration(v) != nil {
		return nil
	}
	known := make([]int64, 0, len(m.migrations))
	for _, x := range m.migrations {
		known = append(known, x.Version)
	}
	if zero != "" {
		zero = "0 (" + zero + ") or "
	}
	return fmt.Errorf("%s %d: no migration has that version; accepted: %sone of %v", flag, v, zero, known)
}

// errNotNeeded stops withLock when another migrator did the work while
// this one waited.
var errNotNeeded = errors.New("migrate: nothing left to do")

// withLock runs fn while holding the migration lock. needed, if not nil,
// is asked before every attempt to take the lock: when it says the work
// is done (another migrator did it while this one waited), withLock
// returns errNotNeeded without locking.
func (m *Migrator) withLock(ctx context.Context, needed func(context.Context) (bool, error), fn func(ctx context.Context) error) (err error) {
	if m.cfg.readOnly {
		return ErrReadOnly
	}
	conn, err := m.db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("lock connection: %w", err)
	}
	defer conn.Close()
	deadline := time.Now().Add(m.cfg.lockTimeout)
	for {
		if needed != nil {
			ok, err := needed(ctx)
			if err != nil {
				return err
			}
			if !ok {
				return errNotNeeded
			}
		}
		// On PostgreSQL one attempt takes about a second (goose's locker
		// polls pg_try_advisory_lock); MySQL and SQLite wait in the
		// database for the whole timeout.
		err = m.locker.SessionLock(ctx, conn)
		if err == nil {
			break
		}
		if perr := conn.PingContext(ctx); perr != nil {
			return fmt.Errorf("acquire migration lock: %w", errors.Join(err, perr))
		}
		if ctx.Err() != nil || errors.Is(err, ErrLockTimeout) || time.Now().After(deadline) {
			if ctx.Err() == nil && !errors.Is(err, ErrLockTimeout) {
				err = fmt.Errorf("%w after %s: %w", ErrLockTimeout, m.cfg.lockTimeout, err)
			}
			return fmt.Errorf("acquire migration lock: %w", err)
		}
	}
	defer func() {
		if uerr := m.locker.SessionUnlock(context.WithoutCancel(ctx), conn); uerr != nil {
			err = errors.Join(err, fmt.Errorf("release migration lock: %w", uerr))
		}
	}()
	return fn(ctx)
}

// q adapts a query written with ? placeholders to the dialect.
func (m *Migrator) q(query string) string { return rebind(m.target.Dialect, query) }

func rebind(d Dialect, query string) string {
	if d != Postgres {
		return query
	}
	var b []byte
	n := 0
	for i := 0; i < len(query); i++ {
		if query[i] == '?' {
			n++
			b = fmt.Appendf(b, "$%d", n)
			continue
		}
		b = append(b, query[i])
	}
	return string(b)
}

// quote quotes a table name validated by identRE. PostgreSQL folds
// unquoted names to lower case, so the quoted form is lower-cased too. A
// quote character inside the name is doubled all the same (quoteColumn),
// so that a name that slipped past validation cannot end the identifier.
func quote(d Dialect, name string) string {
	if d == Postgres {
		name = strings.ToLower(name)
	}
	return quoteColumn(d, name)
}

// tableExists reports whether an internal table exists.
func (m *Migrator) tableExists(ctx context.Context, name string) (bool, error) {
	var q string
	switch m.target.Dialect {
	case Postgres:
		q = "SELECT COUNT(*) FROM pg_tables WHERE schemaname = current_schema() AND tablename = $1"
	case MySQL:
		q = "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?"
	default:
		q = "SELECT COUNT(*) FROM sqlite_schema WHERE type = 'table' AND name = ?"
	}
	var n int
	if err := m.db.QueryRowContext(ctx, q, name).Scan(&n); err != nil {
		return false, fmt.Errorf("look up table %s: %w", name, err)
	}
	return n > 0, nil
}
