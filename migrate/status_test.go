package migrate

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// TestStatusReadOnly: status on a database no migrator has touched
// reports everything pending and creates nothing.
func TestStatusReadOnly(t *testing.T) {
	fsys := files("00001_users.sql", usersV1, "00002_orders.sql", ordersV2)
	forEachDialect(t, func(t *testing.T, base Target) {
		tg := scratch(t, base)
		if tg.Dialect == SQLite {
			// The scratch file does not exist until something opens it.
			if err := os.WriteFile(tg.Database, nil, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		m := openMigrator(t, tg, fsys, WithReadOnly())
		st, err := m.Status(t.Context())
		if err != nil {
			t.Fatalf("Status: %v", err)
		}
		if len(st) != 2 || st[0].State != "pending" || st[1].State != "pending" {
			t.Errorf("status = %+v, want two pending", st)
		}
		for _, table := range []string{"goose_db_version", stateTable, snapshotsTable} {
			if ok, err := m.tableExists(t.Context(), table); err != nil || ok {
				t.Errorf("table %s exists after status (err %v)", table, err)
			}
		}
		if _, err := m.Up(t.Context(), 0); !errors.Is(err, ErrReadOnly) {
			t.Errorf("Up on a read-only migrator = %v, want ErrReadOnly", err)
		}

		// After an up, status on a read-only migrator reads what it did.
		if _, err := openMigrator(t, tg, fsys).Up(t.Context(), 1); err != nil {
			t.Fatal(err)
		}
		st, err = m.Status(t.Context())
		if err != nil {
			t.Fatalf("Status: %v", err)
		}
		if st[0].State != "applied" || st[1].State != "pending" {
			t.Errorf("status = %+v, want applied, pending", st)
		}
	})
}

func TestStatusMissingSQLiteFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "app.db")
	_, err := Open(t.Context(), "sqlite:"+path, files("00001_users.sql", usersV1), WithReadOnly())
	if !errors.Is(err, ErrNoDatabase) {
		t.Fatalf("Open read-only of a missing file = %v, want ErrNoDatabase", err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the SQLite file was created: %v", err)
	}
}
