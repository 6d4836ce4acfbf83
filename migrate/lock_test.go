package migrate

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"testing"
)

// TestMySQLLockLongDatabaseName migrates a database whose name is too long
// to fit a lock name beside a prefix (MySQL allows 64 characters).
func TestMySQLLockLongDatabaseName(t *testing.T) {
	t.Parallel()
	base := baseTarget(t, MySQL)
	var b [22]byte
	rand.Read(b[:])
	name := "switchback_long_" + hex.EncodeToString(b[:]) // 60 characters
	admin, err := sql.Open("mysql", base.DSN)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close() })
	exec(t, admin, "CREATE DATABASE "+name)
	t.Cleanup(func() {
		if _, err := admin.ExecContext(context.Background(), "DROP DATABASE IF EXISTS "+name); err != nil {
			t.Errorf("drop %s: %v", name, err)
		}
	})
	tg, err := base.withDatabase(name)
	if err != nil {
		t.Fatal(err)
	}

	lock := mysqlLockName(name)
	if len(lock) > 64 {
		t.Fatalf("lock name %q is %d characters, want at most 64", lock, len(lock))
	}
	if other := mysqlLockName(name[:59]); other == lock {
		t.Errorf("databases %s and %s share the lock name %s", name, name[:59], lock)
	}
	m := openMigrator(t, tg, counted)
	// While held, the lock is visible to other sessions under that name.
	err = m.withLock(t.Context(), nil, func(ctx context.Context) error {
		var holder sql.NullInt64
		if err := admin.QueryRowContext(ctx, "SELECT IS_USED_LOCK(?)", lock).Scan(&holder); err != nil {
			return err
		}
		if !holder.Valid {
			t.Errorf("IS_USED_LOCK(%q) is NULL while the migration lock is held", lock)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("withLock: %v", err)
	}
	if rep, err := m.Up(t.Context(), 0); err != nil || rep.Version != 3 {
		t.Fatalf("Up = %+v, %v; want version 3", rep, err)
	}
	var free int
	if err := admin.QueryRowContext(t.Context(), "SELECT IS_FREE_LOCK(?)", lock).Scan(&free); err != nil || free != 1 {
		t.Errorf("IS_FREE_LOCK(%q) after Up = %d, %v; want 1", lock, free, err)
	}
}
