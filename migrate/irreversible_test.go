package migrate

import (
	"errors"
	"slices"
	"testing"
)

func TestIrreversible(t *testing.T) {
	downs := []struct {
		name string
		file string
	}{
		{"no Down section", "-- +goose Up\nALTER TABLE users ADD COLUMN nick VARCHAR(50);\n"},
		{"empty Down section", "-- +goose Up\nALTER TABLE users ADD COLUMN nick VARCHAR(50);\n-- +goose Down\n-- nothing to undo\n"},
	}
	forEachDialect(t, func(t *testing.T, base Target) {
		for _, tt := range downs {
			t.Run(tt.name, func(t *testing.T) {
				tg := scratch(t, base)
				fsys := files("00001_users.sql", usersV1, "00002_nick.sql", tt.file)

				// Refused before anything runs: not even version 1.
				m := openMigrator(t, tg, fsys)
				rep, err := m.Up(t.Context(), 0)
				var ie *IrreversibleError
				if !errors.Is(err, ErrIrreversible) || !errors.As(err, &ie) {
					t.Fatalf("Up = %+v, %v; want ErrIrreversible", rep, err)
				}
				if !slices.Equal(ie.Files, []string{"00002_nick.sql"}) || ie.Direction != "up" {
					t.Errorf("error names %s %v, want up [00002_nick.sql]", ie.Direction, ie.Files)
				}
				for _, table := range []string{"goose_db_version", "users", stateTable} {
					if ok, err := m.tableExists(t.Context(), table); err != nil || ok {
						t.Errorf("table %s exists after a refused up (err %v)", table, err)
					}
				}
				// Up to the reversible version is fine.
				if rep, err := m.Up(t.Context(), 1); err != nil || rep.Version != 1 {
					t.Fatalf("Up(1) = %+v, %v", rep, err)
				}

				allowed := openMigrator(t, tg, fsys, WithAllowIrreversible())
				rep, err = allowed.Up(t.Context(), 0)
				if err != nil {
					t.Fatalf("Up with WithAllowIrreversible: %v", err)
				}
				if len(rep.Applied) != 1 || !rep.Applied[0].Irreversible || rep.Version != 2 {
					t.Errorf("applied %+v at version %d; want 00002 marked irreversible, version 2", rep.Applied, rep.Version)
				}
				st, err := m.Status(t.Context())
				if err != nil {
					t.Fatal(err)
				}
				if !st[1].Irreversible || st[0].Irreversible {
					t.Errorf("status irreversible = %v, %v; want false, true", st[0].Irreversible, st[1].Irreversible)
				}

				// Rolling it back would only forget it: refused too.
				if _, err := m.Down(t.Context(), -1); !errors.As(err, &ie) || ie.Direction != "down" {
					t.Fatalf("Down = %v, want an IrreversibleError for down", err)
				}
				if _, err := m.Down(t.Context(), 0); !errors.Is(err, ErrIrreversible) {
					t.Fatalf("Down(0) = %v, want ErrIrreversible", err)
				}
				if v, err := m.provider.GetDBVersion(t.Context()); err != nil || v != 2 {
					t.Errorf("version after refused downs = %d, %v; want 2", v, err)
				}
				rep, err = allowed.Down(t.Context(), -1)
				if err != nil || len(rep.Applied) != 1 || !rep.Applied[0].Irreversible || rep.Version != 1 {
					t.Errorf("Down with WithAllowIrreversible = %+v, %v; want 00002 marked irreversible, version 1", rep, err)
				}
			})
		}
	})
}
