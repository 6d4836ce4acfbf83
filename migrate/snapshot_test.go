package migrate

import (
	"database/sql"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

const ordersSchema = `-- +goose Up
CREATE TABLE orders (
    id INTEGER PRIMARY KEY,
    customer VARCHAR(40) NOT NULL,
    total DECIMAL(12,2) NOT NULL,
    status VARCHAR(20) NOT NULL DEFAULT 'new'
);
CREATE TABLE order_items (
    id INTEGER PRIMARY KEY,
    order_id INTEGER NOT NULL REFERENCES orders (id),
    qty INTEGER NOT NULL
);

-- +goose Down
DROP TABLE order_items;
DROP TABLE orders;
`

const archiveOrders = `-- +switchback snapshot orders order_items
-- +goose Up
UPDATE orders SET status = 'archived', total = 0 WHERE id % 3 = 0;
DELETE FROM order_items WHERE qty > 2;

-- +goose Down
UPDATE orders SET status = 'new' WHERE status = 'archived';
`

// rowsOf reads a whole table as strings, ordered by id.
func rowsOf(t *testing.T, db *sql.DB, q string) []string {
	t.Helper()
	var out []string
	err := queryRows(t.Context(), db, q, func(r *sql.Rows) error {
		cols, _ := r.Columns()
		vals := make([]sql.NullString, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := r.Scan(ptrs...); err != nil {
			return err
		}
		parts := make([]string, len(vals))
		for i, v := range vals {
			parts[i] = v.String
			if !v.Valid {
				parts[i] = "NULL"
			}
		}
		out = append(out, strings.Join(parts, "|"))
		return nil
	})
	if err != nil {
		t.Fatalf("read %q: %v", q, err)
	}
	return out
}

func TestSnapshotRestore(t *testing.T) {
	const n = 3000
	forEachDialect(t, func(t *testing.T, base Target) {
		tg := scratch(t, base)
		at := time.Date(2026, 2, 1, 9, 30, 0, 0, time.UTC)
		m := openMigrator(t, tg, files("00001_orders.sql", ordersSchema, "00002_archive.sql", archiveOrders),
			WithNow(func() time.Time { return at }))
		if _, err := m.Up(t.Context(), 1); err != nil {
			t.Fatalf("up to 1: %v", err)
		}
		d := tg.Dialect
		exec(t, m.DB(),
			series(d, n, "orders", "id, customer, total, status", "x, 'customer', x * 1.25, 'new'"),
			series(d, 2*n, "order_items", "id, order_id, qty", "x, (x % "+fmt.Sprint(n)+") + 1, x % 5"),
		)
		const ordersQ, itemsQ = "SELECT * FROM orders ORDER BY id", "SELECT * FROM order_items ORDER BY id"
		wantOrders, wantItems := rowsOf(t, m.DB(), ordersQ), rowsOf(t, m.DB(), itemsQ)

		rep, err := m.Up(t.Context(), 0)
		if err != nil {
			t.Fatalf("up: %v", err)
		}
		if got := rep.Applied[0].Snapshots; len(got) != 2 || got[0].Rows != n || got[1].Rows != 2*n {
			t.Fatalf("snapshots taken = %+v, want orders %d rows and order_items %d rows", got, n, 2*n)
		}
		if slices.Equal(rowsOf(t, m.DB(), ordersQ), wantOrders) {
			t.Fatal("migration 2 changed nothing; the test proves nothing")
		}

		list, err := m.Snapshots(t.Context())
		if err != nil {
			t.Fatalf("Snapshots: %v", err)
		}
		want := []Snapshot{
			{Version: 2, Table: "order_items", Copy: "switchback_snap_2_order_items", Rows: 2 * n, TakenAt: at},
			{Version: 2, Table: "orders", Copy: "switchback_snap_2_orders", Rows: n, TakenAt: at},
		}
		if !slices.Equal(list, want) {
			t.Errorf("Snapshots = %+v, want %+v", list, want)
		}

		restored, err := m.RestoreSnapshot(t.Context(), 2)
		if err != nil {
			t.Fatalf("RestoreSnapshot: %v", err)
		}
		if got, want := restored, []Restored{{"orders", n}, {"order_items", 2 * n}}; !slices.Equal(got, want) {
			t.Errorf("restored %+v, want %+v", got, want)
		}
		if got := rowsOf(t, m.DB(), ordersQ); !slices.Equal(got, wantOrders) {
			t.Errorf("orders after restore differ from before the migration (%d rows, want %d)", len(got), len(wantOrders))
		}
		if got := rowsOf(t, m.DB(), itemsQ); !slices.Equal(got, wantItems) {
			t.Errorf("order_items after restore differ from before the migration (%d rows, want %d)", len(got), len(wantItems))
		}

		if _, err := m.RestoreSnapshot(t.Context(), 1); !errors.Is(err, ErrNoSnapshot) {
			t.Errorf("RestoreSnapshot(1) = %v, want ErrNoSnapshot", err)
		}
	})
}

// TestSnapshotRestoreDroppedColumn runs the example's contract: drop a
// column, roll back, and restore its values from the snapshot.
func TestSnapshotRestoreDroppedColumn(t *testing.T) {
	forEachDialect(t, func(t *testing.T, base Target) {
		tg := scratch(t, base)
		m := openMigrator(t, tg, os.DirFS("../examples/migrations"))
		if _, err := m.Up(t.Context(), 1); err != nil {
			t.Fatalf("up to 1: %v", err)
		}
		exec(t, m.DB(), series(tg.Dialect, 500, "users", "id, email, email_confirmed_at",
			"x, "+concat(tg.Dialect, "'user'", "x", "'@example.com'")+", CASE WHEN x % 2 = 0 THEN CURRENT_TIMESTAMP END"))
		const q = "SELECT id, email, email_confirmed_at FROM users ORDER BY id"
		want := rowsOf(t, m.DB(), q)
		if _, err := m.Up(t.Context(), 0); err != nil {
			t.Fatalf("up: %v", err)
		}
		if _, err := m.RestoreSnapshot(t.Context(), 4); err == nil || !strings.Contains(err.Error(), "email_confirmed_at") {
			t.Fatalf("restore before rolling back = %v, want an error naming the dropped column", err)
		}
		if _, err := m.Down(t.Context(), 3); err != nil {
			t.Fatalf("down to 3: %v", err)
		}
		if _, err := m.RestoreSnapshot(t.Context(), 4); err != nil {
			t.Fatalf("RestoreSnapshot(4): %v", err)
		}
		if got := rowsOf(t, m.DB(), q); !slices.Equal(got, want) {
			t.Errorf("users after restore differ from before the contract migration")
		}
	})
}

func concat(d Dialect, parts ...string) string {
	if d == MySQL {
		return "CONCAT(" + strings.Join(parts, ", ") + ")"
	}
	return strings.Join(parts, " || ")
}

// TestRetriedUpKeepsSnapshot: an up that changed rows but could not be
// rolled back must not let its retry replace the snapshot from before it;
// an up the database rolled back must not leave a stale one behind; and a
// down lets the next up take a fresh one.
// ordersOnly is orders without order_items, whose reference would make
// PostgreSQL refuse to truncate orders alone.
const ordersOnly = `-- +goose Up
CREATE TABLE orders (id INTEGER PRIMARY KEY, customer VARCHAR(40) NOT NULL, total DECIMAL(12,2) NOT NULL, status VARCHAR(20) NOT NULL);
-- +goose Down
DROP TABLE orders;
`

func TestRetriedUpKeepsSnapshot(t *testing.T) {
	const fixed = `-- +switchback snapshot orders
-- +goose Up
UPDATE orders SET status = 'archived' WHERE id % 2 = 0;
-- +goose Down
UPDATE orders SET status = 'new' WHERE status = 'archived';
`
	tests := []struct {
		name   string
		broken string
	}{
		// A half-done backfill: the UPDATE commits, the next statement fails.
		{"no transaction", `-- +switchback snapshot orders
-- +goose NO TRANSACTION
-- +goose Up
UPDATE orders SET status = 'archived' WHERE id % 2 = 0;
INSERT INTO no_such_table (id) VALUES (1);
-- +goose Down
UPDATE orders SET status = 'new' WHERE status = 'archived';
`},
		// MySQL commits the UPDATE before the failing DDL; PostgreSQL and
		// SQLite roll both back.
		{"dml then failing ddl", `-- +switchback snapshot orders
-- +goose Up
UPDATE orders SET status = 'archived' WHERE id % 2 = 0;
ALTER TABLE no_such_table ADD COLUMN x INTEGER;
-- +goose Down
UPDATE orders SET status = 'new' WHERE status = 'archived';
`},
	}
	const n = 20
	const ordersQ = "SELECT * FROM orders ORDER BY id"
	at := time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			forEachDialect(t, func(t *testing.T, base Target) {
				tg := scratch(t, base)
				m := openMigrator(t, tg, files("00001_orders.sql", ordersOnly, "00002_archive.sql", tt.broken), WithNow(func() time.Time { return at }))
				if _, err := m.Up(t.Context(), 1); err != nil {
					t.Fatalf("up to 1: %v", err)
				}
				exec(t, m.DB(), series(tg.Dialect, n, "orders", "id, customer, total, status", "x, 'c', x, 'new'"))
				want := rowsOf(t, m.DB(), ordersQ)

				rep, err := m.Up(t.Context(), 0)
				if !errors.Is(err, ErrMigrationFailed) {
					t.Fatalf("up of the broken migration = %v, want ErrMigrationFailed", err)
				}
				snaps, err := m.Snapshots(t.Context())
				if err != nil {
					t.Fatal(err)
				}
				rolledBack := rep.Failed.RolledBack
				if rolledBack {
					if got := rowsOf(t, m.DB(), ordersQ); !slices.Equal(got, want) {
						t.Fatal("a rolled-back migration changed orders")
					}
					if len(snaps) != 0 {
						t.Errorf("snapshots after a rolled-back up = %+v, want none", snaps)
					}
					// Rows written before the retry belong in its snapshot.
					exec(t, m.DB(), "INSERT INTO orders (id, customer, total, status) VALUES (1000, 'late', 1, 'new')")
					want = rowsOf(t, m.DB(), ordersQ)
				} else {
					if slices.Equal(rowsOf(t, m.DB(), ordersQ), want) {
						t.Fatal("the failed migration changed no rows; the test proves nothing")
					}
					if len(rep.Failed.Left) != 0 {
						t.Fatalf("left behind = %v, want no schema change", rep.Failed.Left)
					}
					if len(snaps) != 1 || snaps[0].Rows != n || !snaps[0].RevertedAt.IsZero() {
						t.Errorf("snapshots after a half-applied up = %+v, want orders' %d rows, not reverted", snaps, n)
					}
				}

				m2 := openMigrator(t, tg, files("00001_orders.sql", ordersOnly, "00002_archive.sql", fixed), WithNow(func() time.Time { return at }))
				rep, err = m2.Up(t.Context(), 0)
				if err != nil {
					t.Fatalf("retried up: %v", err)
				}
				// Kept from the half-applied attempt; fresh after a rolled-back one.
				if got := rep.Applied[0].Snapshots; len(got) != 1 || got[0].Kept == rolledBack {
					t.Errorf("retried up's snapshots = %+v, want kept: %v", got, !rolledBack)
				}
				if _, err := m2.RestoreSnapshot(t.Context(), 2); err != nil {
					t.Fatalf("RestoreSnapshot: %v", err)
				}
				if got := rowsOf(t, m2.DB(), ordersQ); !slices.Equal(got, want) {
					t.Errorf("orders after restore = %v,\nwant the rows from before the first attempt: %v", got, want)
				}

				// After a down, the next up replaces the snapshot.
				if _, err := m2.Down(t.Context(), 1); err != nil {
					t.Fatalf("down: %v", err)
				}
				snaps, err = m2.Snapshots(t.Context())
				if err != nil {
					t.Fatal(err)
				}
				if len(snaps) != 1 || !snaps[0].RevertedAt.Equal(at) {
					t.Errorf("snapshots after down = %+v, want reverted at %s", snaps, at)
				}
				exec(t, m2.DB(), "INSERT INTO orders (id, customer, total, status) VALUES (2000, 'later', 1, 'new')")
				rows := int64(len(rowsOf(t, m2.DB(), ordersQ)))
				rep, err = m2.Up(t.Context(), 0)
				if err != nil {
					t.Fatalf("up after down: %v", err)
				}
				if got := rep.Applied[0].Snapshots; len(got) != 1 || got[0].Kept || got[0].Rows != rows || !got[0].RevertedAt.IsZero() {
					t.Errorf("snapshots of the up after a down = %+v, want a fresh one of %d rows", got, rows)
				}
			})
		})
	}
}

func TestPrintSnapshots(t *testing.T) {
	at := time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		snap Snapshot
		want string
	}{
		{"kept", Snapshot{Version: 2, Table: "orders", Copy: "switchback_snap_2_orders", Rows: 5, TakenAt: at}, "keeps it"},
		{"reverted", Snapshot{Version: 2, Table: "orders", Copy: "switchback_snap_2_orders", Rows: 5, TakenAt: at, RevertedAt: at.Add(time.Hour)},
			"replaces it (down at 2026-03-02T09:00:00Z)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b strings.Builder
			printSnapshots(&b, []Snapshot{tt.snap})
			if got := b.String(); !strings.Contains(got, "NEXT UP") || !strings.Contains(got, tt.want) {
				t.Errorf("printSnapshots = %q, want a NEXT UP column saying %q", got, tt.want)
			}
		})
	}
}

// TestSnapshotRestoreSQLiteForeignKeys: with foreign keys on, emptying a
// snapshotted parent must not fire ON DELETE actions on tables outside the
// snapshot, and a restore that would leave dangling references is refused.
func TestSnapshotRestoreSQLiteForeignKeys(t *testing.T) {
	const schema = `-- +goose Up
CREATE TABLE customers (id INTEGER PRIMARY KEY, name VARCHAR(40) NOT NULL);
CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER REFERENCES customers (id) ON DELETE CASCADE);
CREATE TABLE notes (id INTEGER PRIMARY KEY, customer_id INTEGER REFERENCES customers (id) ON DELETE SET NULL);
-- +goose Down
DROP TABLE notes;
DROP TABLE orders;
DROP TABLE customers;
`
	const rename = `-- +switchback snapshot customers
-- +goose Up
UPDATE customers SET name = 'renamed';
-- +goose Down
SELECT 1;
`
	s := scratch(t, baseTarget(t, SQLite))
	tg, err := ParseTarget(s.raw + "&_pragma=foreign_keys(1)")
	if err != nil {
		t.Fatal(err)
	}
	m := openMigrator(t, tg, files("00001_customers.sql", schema, "00002_rename.sql", rename))
	if _, err := m.Up(t.Context(), 1); err != nil {
		t.Fatalf("up to 1: %v", err)
	}
	exec(t, m.DB(),
		series(SQLite, 50, "customers", "id, name", "x, 'customer'"),
		series(SQLite, 100, "orders", "id, customer_id", "x, (x % 50) + 1"),
		series(SQLite, 100, "notes", "id, customer_id", "x, (x % 50) + 1"),
	)
	const customersQ, ordersQ, notesQ = "SELECT * FROM customers ORDER BY id", "SELECT * FROM orders ORDER BY id", "SELECT * FROM notes ORDER BY id"
	wantCustomers, wantOrders, wantNotes := rowsOf(t, m.DB(), customersQ), rowsOf(t, m.DB(), ordersQ), rowsOf(t, m.DB(), notesQ)
	if _, err := m.Up(t.Context(), 0); err != nil {
		t.Fatalf("up: %v", err)
	}

	if _, err := m.RestoreSnapshot(t.Context(), 2); err != nil {
		t.Fatalf("RestoreSnapshot: %v", err)
	}
	for _, c := range []struct {
		q    string
		want []string
	}{{customersQ, wantCustomers}, {ordersQ, wantOrders}, {notesQ, wantNotes}} {
		if got := rowsOf(t, m.DB(), c.q); !slices.Equal(got, c.want) {
			t.Errorf("%s after restore differs from before the migration (%d rows, want %d)", c.q, len(got), len(c.want))
		}
	}

	// A customer added after the snapshot, with an order: restoring
	// customers again would leave that order pointing nowhere.
	exec(t, m.DB(), "INSERT INTO customers (id, name) VALUES (51, 'late')", "INSERT INTO orders (id, customer_id) VALUES (101, 51)")
	before, beforeOrders := rowsOf(t, m.DB(), customersQ), rowsOf(t, m.DB(), ordersQ)
	_, err = m.RestoreSnapshot(t.Context(), 2)
	if !errors.Is(err, ErrRestoreForeignKeys) {
		t.Fatalf("restore with a dangling order = %v, want ErrRestoreForeignKeys", err)
	}
	if msg := err.Error(); !strings.Contains(msg, "orders rowid 101") || !strings.Contains(msg, "customers") {
		t.Errorf("error %q does not name orders rowid 101 and customers", msg)
	}
	if !slices.Equal(rowsOf(t, m.DB(), customersQ), before) || !slices.Equal(rowsOf(t, m.DB(), ordersQ), beforeOrders) {
		t.Error("a refused restore changed customers or orders")
	}

	// The restore's connection went back to the pool with foreign keys on.
	for i := range 3 {
		conn, err := m.DB().Conn(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		var on bool
		if err := conn.QueryRowContext(t.Context(), "PRAGMA foreign_keys").Scan(&on); err != nil {
			t.Fatal(err)
		}
		if !on {
			t.Errorf("pooled connection %d has foreign keys off after a restore", i)
		}
	}
}

func TestQuote(t *testing.T) {
	tests := []struct {
		d          Dialect
		name       string
		table, col string
	}{
		{Postgres, "Orders", `"orders"`, `"Orders"`},
		{Postgres, `a"b`, `"a""b"`, `"a""b"`},
		{SQLite, `a"b`, `"a""b"`, `"a""b"`},
		{SQLite, "a`b", "\"a`b\"", "\"a`b\""},
		{MySQL, "a`b", "`a``b`", "`a``b`"},
		{MySQL, `a"b`, "`a\"b`", "`a\"b`"},
	}
	for _, tt := range tests {
		if got := quote(tt.d, tt.name); got != tt.table {
			t.Errorf("quote(%s, %q) = %s, want %s", tt.d, tt.name, got, tt.table)
		}
		if got := quoteColumn(tt.d, tt.name); got != tt.col {
			t.Errorf("quoteColumn(%s, %q) = %s, want %s", tt.d, tt.name, got, tt.col)
		}
	}
}

// TestSnapshotRestoreQuotedColumns restores a table whose column names
// hold the dialect's quote characters.
func TestSnapshotRestoreQuotedColumns(t *testing.T) {
	forEachDialect(t, func(t *testing.T, base Target) {
		tg := scratch(t, base)
		// say "hi" and back`tick, quoted for the dialect.
		say, tick := `"say ""hi"""`, "\"back`tick\""
		if tg.Dialect == MySQL {
			say, tick = "`say \"hi\"`", "`back``tick`"
		}
		m := openMigrator(t, tg, files(
			"00001_notes.sql", fmt.Sprintf(`-- +goose Up
CREATE TABLE notes (id INTEGER PRIMARY KEY, %s VARCHAR(20), %s VARCHAR(20));
-- +goose Down
DROP TABLE notes;
`, say, tick),
			"00002_blank.sql", fmt.Sprintf(`-- +switchback snapshot notes
-- +goose Up
UPDATE notes SET %s = 'x', %s = 'y';
-- +goose Down
SELECT 1;
`, say, tick)))
		if _, err := m.Up(t.Context(), 1); err != nil {
			t.Fatalf("up to 1: %v", err)
		}
		exec(t, m.DB(), series(tg.Dialect, 10, "notes", "id, "+say+", "+tick, "x, 'hello', 'there'"))
		const q = "SELECT * FROM notes ORDER BY id"
		want := rowsOf(t, m.DB(), q)
		if _, err := m.Up(t.Context(), 0); err != nil {
			t.Fatalf("up: %v", err)
		}
		if _, err := m.RestoreSnapshot(t.Context(), 2); err != nil {
			t.Fatalf("RestoreSnapshot: %v", err)
		}
		if got := rowsOf(t, m.DB(), q); !slices.Equal(got, want) {
			t.Errorf("notes after restore = %v, want %v", got, want)
		}
	})
}

// TestSnapshotRestoreRefusesRecords: restore re-checks the names it reads
// from the snapshot table before putting them into SQL.
func TestSnapshotRestoreRefusesRecords(t *testing.T) {
	const archive = `-- +switchback snapshot orders
-- +goose Up
UPDATE orders SET status = 'archived';
-- +goose Down
UPDATE orders SET status = 'new';
`
	tests := []struct {
		name, table, copy string
		rows              int64
		bad               string // the name the error must quote; empty when the record is sound
	}{
		{"copy of another table", "orders", "orders_archive", 1, "orders_archive"},
		{"copy with a quote", "orders", `switchback_snap_2_orders" --`, 5, `switchback_snap_2_orders" --`},
		{"table with a quote", `orders" --`, "switchback_snap_2_orders", 5, `orders" --`},
		{"sound", "orders", "switchback_snap_2_orders", 5, ""},
	}
	forEachDialect(t, func(t *testing.T, base Target) {
		tg := scratch(t, base)
		m := openMigrator(t, tg, files("00001_orders.sql", ordersOnly, "00002_archive.sql", archive))
		if _, err := m.Up(t.Context(), 1); err != nil {
			t.Fatalf("up to 1: %v", err)
		}
		exec(t, m.DB(), series(tg.Dialect, 5, "orders", "id, customer, total, status", "x, 'c', x, 'new'"))
		const q = "SELECT * FROM orders ORDER BY id"
		want := rowsOf(t, m.DB(), q)
		if _, err := m.Up(t.Context(), 0); err != nil {
			t.Fatalf("up: %v", err)
		}
		// A table with the columns of orders that is not its snapshot.
		exec(t, m.DB(), "CREATE TABLE orders_archive AS SELECT * FROM orders WHERE id = 1")
		migrated := rowsOf(t, m.DB(), q)
		for _, tt := range tests {
			exec(t, m.DB(), "DELETE FROM "+snapshotsTable)
			if _, err := m.DB().ExecContext(t.Context(), m.q("INSERT INTO "+snapshotsTable+" (version, table_name, snapshot_table, row_count, taken_at) VALUES (2, ?, ?, ?, '2026-03-02T08:00:00Z')"),
				tt.table, tt.copy, tt.rows); err != nil {
				t.Fatal(err)
			}
			_, err := m.RestoreSnapshot(t.Context(), 2)
			if tt.bad == "" {
				if err != nil {
					t.Errorf("%s: RestoreSnapshot = %v", tt.name, err)
				} else if got := rowsOf(t, m.DB(), q); !slices.Equal(got, want) {
					t.Errorf("%s: orders after restore = %v, want %v", tt.name, got, want)
				}
				continue
			}
			if !errors.Is(err, ErrSnapshotRecord) || !strings.Contains(err.Error(), strconv.Quote(tt.bad)) {
				t.Errorf("%s: RestoreSnapshot = %v, want ErrSnapshotRecord naming %s", tt.name, err, tt.bad)
			}
			if got := rowsOf(t, m.DB(), q); !slices.Equal(got, migrated) {
				t.Errorf("%s: a refused restore changed orders to %v", tt.name, got)
			}
		}
	})
}

// TestSnapshotTableUpgrade: a snapshot table created before reverted_at
// existed is listed as it is and gains the column on the next up.
func TestSnapshotTableUpgrade(t *testing.T) {
	forEachDialect(t, func(t *testing.T, base Target) {
		tg := scratch(t, base)
		m := openMigrator(t, tg, files("00001_orders.sql", ordersOnly))
		exec(t, m.DB(), `CREATE TABLE `+snapshotsTable+` (
			version BIGINT NOT NULL,
			table_name VARCHAR(128) NOT NULL,
			snapshot_table VARCHAR(128) NOT NULL,
			row_count BIGINT NOT NULL,
			taken_at VARCHAR(40) NOT NULL,
			PRIMARY KEY (version, table_name))`,
			"INSERT INTO "+snapshotsTable+" VALUES (7, 'orders', 'switchback_snap_7_orders', 3, '2026-01-01T00:00:00Z')")
		want := []Snapshot{{Version: 7, Table: "orders", Copy: "switchback_snap_7_orders", Rows: 3, TakenAt: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}}
		if got, err := m.Snapshots(t.Context()); err != nil || !slices.Equal(got, want) {
			t.Errorf("Snapshots of the old table = %+v, %v; want %+v", got, err, want)
		}
		if _, err := m.Up(t.Context(), 0); err != nil {
			t.Fatalf("up: %v", err)
		}
		if _, err := m.Down(t.Context(), 0); err != nil {
			t.Fatalf("down: %v", err)
		}
		if got, err := m.Snapshots(t.Context()); err != nil || !slices.Equal(got, want) {
			t.Errorf("Snapshots after the upgrade = %+v, %v; want %+v", got, err, want)
		}
	})
}
