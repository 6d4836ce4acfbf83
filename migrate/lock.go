package migrate

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/pressly/goose/v3/lock"
)

// ErrLockTimeout is returned when another migrator held the migration lock
// for longer than the lock timeout.
var ErrLockTimeout = errors.New("migrate: timed out waiting for the migration lock")

// newLocker returns the session locker for d. Every locker is held on one
// dedicated connection for a whole up or down run, so that snapshots, the
// journal and goose's own work all happen under the same lock.
func newLocker(t Target, timeout time.Duration) (lock.SessionLocker, error) {
	switch t.Dialect {
	case Postgres:
		// goose's advisory-lock locker, with its default lock id so that a
		// plain goose run and switchback exclude each other.
		// One attempt a second, retried by withLock up to the timeout, so
		// that a waiter can notice that the work it waited for is done.
		return lock.NewPostgresSessionLocker(lock.WithLockTimeout(1, 1), lock.WithUnlockTimeout(1, 10))
	case MySQL:
		return &mysqlLocker{timeout: timeout}, nil
	default:
		return &sqliteLocker{path: t.Database + ".lock", timeout: timeout}, nil
	}
}

// mysqlLocker takes a named lock with GET_LOCK. Named locks are server
// wide, so the name carries the database; the server releases it when the
// session ends, even if the process dies.
type mysqlLocker struct {
	timeout time.Duration
}

// mysqlLockName returns the lock name for database db: a fixed prefix and
// the first 16 hex digits of the name's SHA-256. MySQL refuses lock names
// over 64 characters (MariaDB over 192 bytes), and a database name alone
// may be 64 characters long.
func mysqlLockName(db string) string {
	sum := sha256.Sum256([]byte(db))
	return "switchback_migrate:" + hex.EncodeToString(sum[:8])
}

// lockName reads the connection's database from the server, as
// DATABASE() spells it, and returns its lock name.
func (l *mysqlLocker) lockName(ctx context.Context, conn *sql.Conn) (string, error) {
	var db sql.NullString
	if err := conn.QueryRowContext(ctx, "SELECT DATABASE()").Scan(&db); err != nil {
		return "", fmt.Errorf("lock name: %w", err)
	}
	if !db.Valid {
		return "", errors.New("lock name: the connection has no database selected")
	}
	return mysqlLockName(db.String), nil
}

func (l *mysqlLocker) SessionLock(ctx context.Context, conn *sql.Conn) error {
	name, err := l.lockName(ctx, conn)
	if err != nil {
		return err
	}
	var got sql.NullInt64
	err = conn.QueryRowContext(ctx, "SELECT GET_LOCK(?, ?)", name, int64(max(l.timeout/time.Second, 1))).Scan(&got)
	if err != nil {
		return fmt.Errorf("get_lock %s: %w", name, err)
	}
	if !got.Valid || got.Int64 != 1 {
		return fmt.Errorf("get_lock %s after %s: %w", name, l.timeout, ErrLockTimeout)
	}
	return nil
}

func (l *mysqlLocker) SessionUnlock(ctx context.Context, conn *sql.Conn) error {
	name, err := l.lockName(ctx, conn)
	if err != nil {
		return fmt.Errorf("release_lock: %w", err)
	}
	var released sql.NullInt64
	if err := conn.QueryRowContext(ctx, "SELECT RELEASE_LOCK(?)", name).Scan(&released); err != nil {
		return fmt.Errorf("release_lock %s: %w", name, err)
	}
	return nil
}

// sqliteLocker holds an exclusive transaction on a side file, PATH.lock.
// SQLite's own file locking makes it work across processes and across
// connections of one process, on every platform, and the operating system
// drops it when the process dies. The conn passed by the caller (on the
// migrated database) is not used: an exclusive lock there would block the
// migration itself.
type sqliteLocker struct {
	path    string
	timeout time.Duration

	// db and tx are set between SessionLock and SessionUnlock; a locker
	// serves one run at a time.
	db *sql.DB
	tx *sql.Conn
}

func (l *sqliteLocker) SessionLock(ctx context.Context, _ *sql.Conn) error {
	ms := max(l.timeout.Milliseconds(), 1)
	db, err := sql.Open("sqlite", fmt.Sprintf("%s?_pragma=busy_timeout(%d)", l.path, ms))
	if err != nil {
		return fmt.Errorf("open lock file: %w", err)
	}
	conn, err := db.Conn(ctx)
	if err != nil {
		db.Close()
		return fmt.Errorf("open lock file: %w", err)
	}
	if _, err := conn.ExecContext(ctx, "BEGIN EXCLUSIVE"); err != nil {
		conn.Close()
		db.Close()
		if isSQLiteBusy(err) {
			return fmt.Errorf("lock %s after %s: %w", l.path, l.timeout, ErrLockTimeout)
		}
		return fmt.Errorf("lock %s: %w", l.path, err)
	}
	l.db, l.tx = db, conn
	return nil
}

func (l *sqliteLocker) SessionUnlock(ctx context.Context, _ *sql.Conn) error {
	if l.tx == nil {
		return nil
	}
	_, err := l.tx.ExecContext(ctx, "ROLLBACK")
	err = errors.Join(err, l.tx.Close(), l.db.Close())
	l.db, l.tx = nil, nil
	if err != nil {
		return fmt.Errorf("unlock %s: %w", l.path, err)
	}
	return nil
}

func isSQLiteBusy(err error) bool {
	var coder interface{ Code() int }
	if errors.As(err, &coder) {
		// SQLITE_BUSY and its extended codes.
		return coder.Code()&0xff == 5
	}
	return false
}
