package migrate

import (
	"errors"
	"os"
	"slices"
	"strings"
	"testing"
)

const usersV1 = `-- +switchback expand
-- +goose Up
CREATE TABLE users (
    id INTEGER PRIMARY KEY,
    email VARCHAR(100) NOT NULL,
    status VARCHAR(20) NOT NULL DEFAULT 'new',
    CONSTRAINT users_email_check CHECK (email <> '')
);

-- +goose Down
DROP TABLE users;
`

const ordersV2 = `-- +goose Up
CREATE TABLE orders (
    id INTEGER PRIMARY KEY,
    user_id INTEGER NOT NULL,
    total DECIMAL(10,2) NOT NULL DEFAULT 0,
    CONSTRAINT orders_user_fk FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
);
CREATE INDEX orders_user_idx ON orders (user_id);

-- +goose Down
DROP TABLE orders;
`

const viewV3 = `-- +goose Up
CREATE VIEW user_totals AS SELECT user_id, SUM(total) AS total FROM orders GROUP BY user_id;

-- +goose Down
DROP VIEW user_totals;
`

// triggerV4 creates a trigger (and on PostgreSQL its function and a
// sequence), each dialect in its own syntax.
var triggerV4 = map[Dialect]string{
	SQLite: `-- +goose Up
-- +goose StatementBegin
CREATE TRIGGER orders_clamp AFTER INSERT ON orders BEGIN
    UPDATE orders SET total = 0 WHERE id = NEW.id AND total < 0;
END;
-- +goose StatementEnd

-- +goose Down
DROP TRIGGER orders_clamp;
`,
	Postgres: `-- +goose Up
CREATE SEQUENCE invoice_numbers START 1000;
-- +goose StatementBegin
CREATE FUNCTION orders_clamp() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.total := GREATEST(NEW.total, 0);
    RETURN NEW;
END;
$$;
-- +goose StatementEnd
CREATE TRIGGER orders_clamp BEFORE INSERT ON orders FOR EACH ROW EXECUTE FUNCTION orders_clamp();

-- +goose Down
DROP TRIGGER orders_clamp ON orders;
DROP FUNCTION orders_clamp();
DROP SEQUENCE invoice_numbers;
`,
	MySQL: `-- +goose Up
CREATE TRIGGER orders_clamp BEFORE INSERT ON orders FOR EACH ROW SET NEW.total = GREATEST(NEW.total, 0);

-- +goose Down
DROP TRIGGER orders_clamp;
`,
}

func TestVerifyGoodMigrations(t *testing.T) {
	forEachDialect(t, func(t *testing.T, base Target) {
		fsys := files(
			"00001_users.sql", usersV1,
			"00002_orders.sql", ordersV2,
			"00003_view.sql", viewV3,
			"00004_trigger.sql", triggerV4[base.Dialect],
		)
		rep, err := Verify(t.Context(), base.raw, fsys)
		if err != nil {
			t.Fatalf("Verify: %v\n%v", err, rep)
		}
		if got, want := len(rep.Checked), 4; got != want {
			t.Errorf("checked %d migrations, want %d", got, want)
		}
	})
}

func TestVerifyExampleMigrations(t *testing.T) {
	forEachDialect(t, func(t *testing.T, base Target) {
		rep, err := Verify(t.Context(), base.raw, os.DirFS("../examples/migrations"))
		if err != nil {
			t.Fatalf("Verify: %v\n%+v", err, rep)
		}
		if got, want := len(rep.Checked), 4; got != want {
			t.Errorf("checked %d migrations, want %d", got, want)
		}
	})
}

// sqliteRebuild writes the SQLite table rebuild that stands in for ALTER
// COLUMN there.
func sqliteRebuild(def string) string {
	return "CREATE TABLE users_tmp (" + def + ");\n" +
		"INSERT INTO users_tmp (id, email, status) SELECT id, email, status FROM users;\n" +
		"DROP TABLE users;\n" +
		"ALTER TABLE users_tmp RENAME TO users;\n"
}

const (
	sqliteUsersWithNick  = "id INTEGER PRIMARY KEY, email VARCHAR(100) NOT NULL, status VARCHAR(20) NOT NULL DEFAULT 'new', nick VARCHAR(50), CONSTRAINT users_email_check CHECK (email <> '')"
	sqliteUsersNoDefault = "id INTEGER PRIMARY KEY, email VARCHAR(100) NOT NULL, status VARCHAR(20) NOT NULL, CONSTRAINT users_email_check CHECK (email <> '')"
	sqliteUsersNoCheck   = "id INTEGER PRIMARY KEY, email VARCHAR(100) NOT NULL, status VARCHAR(20) NOT NULL DEFAULT 'new'"
	sqliteUsersOriginal  = "id INTEGER PRIMARY KEY, email VARCHAR(100) NOT NULL, status VARCHAR(20) NOT NULL DEFAULT 'new', CONSTRAINT users_email_check CHECK (email <> '')"
)

func TestVerifyBadDown(t *testing.T) {
	tests := []struct {
		name string
		up   map[Dialect]string
		down map[Dialect]string
		// wantKey must appear in the key of a reported change.
		wantKey string
	}{
		{
			name:    "forgets an index",
			up:      all("CREATE INDEX users_email_idx ON users (email);\nALTER TABLE users ADD COLUMN nick VARCHAR(50);\n"),
			down:    all("ALTER TABLE users DROP COLUMN nick;\n"),
			wantKey: "users_email_idx",
		},
		{
			name: "forgets a default",
			up: map[Dialect]string{
				SQLite:   sqliteRebuild(sqliteUsersWithNick),
				Postgres: "ALTER TABLE users ALTER COLUMN status SET DEFAULT 'active';\n",
				MySQL:    "ALTER TABLE users ALTER COLUMN status SET DEFAULT 'active';\n",
			},
			down: map[Dialect]string{
				SQLite:   sqliteRebuild(sqliteUsersNoDefault),
				Postgres: "ALTER TABLE users ALTER COLUMN status DROP DEFAULT;\n",
				MySQL:    "ALTER TABLE users ALTER COLUMN status DROP DEFAULT;\n",
			},
			wantKey: "column users.status",
		},
		{
			name:    "forgets a column",
			up:      all("ALTER TABLE users ADD COLUMN nick VARCHAR(50);\nALTER TABLE users ADD COLUMN bio TEXT;\n"),
			down:    all("ALTER TABLE users DROP COLUMN nick;\n"),
			wantKey: "column users.bio",
		},
		{
			name: "forgets a constraint",
			up: map[Dialect]string{
				SQLite:   sqliteRebuild(sqliteUsersWithNick),
				Postgres: "ALTER TABLE users ADD CONSTRAINT users_email_key UNIQUE (email);\n",
				MySQL:    "ALTER TABLE users ADD CONSTRAINT users_email_key UNIQUE (email);\n",
			},
			down: map[Dialect]string{
				SQLite:   sqliteRebuild(sqliteUsersNoCheck),
				Postgres: "SELECT 1;\n",
				MySQL:    "SELECT 1;\n",
			},
			wantKey: "users_email_",
		},
		{
			name:    "has an empty down",
			up:      all("ALTER TABLE users ADD COLUMN nick VARCHAR(50);\n"),
			down:    all(""),
			wantKey: "",
		},
	}
	forEachDialect(t, func(t *testing.T, base Target) {
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				bad := "-- +goose Up\n" + tt.up[base.Dialect] + "\n-- +goose Down\n" + tt.down[base.Dialect]
				fsys := files(
					"00001_users.sql", usersV1,
					"00002_bad.sql", bad,
					"00003_orders.sql", ordersV2,
				)
				rep, err := Verify(t.Context(), base.raw, fsys)
				if !errors.Is(err, ErrVerify) {
					t.Fatalf("Verify error = %v, want ErrVerify", err)
				}
				if got, want := len(rep.Failures), 1; got != want {
					t.Fatalf("%d failures, want %d: %+v", got, want, rep.Failures)
				}
				f := rep.Failures[0]
				t.Logf("reported:\n%s", f)
				if got, want := f.File, "00002_bad.sql"; got != want {
					t.Errorf("failure names %s, want %s", got, want)
				}
				if tt.wantKey == "" {
					if !strings.Contains(f.Reason, "empty") {
						t.Errorf("reason = %q, want it to say the down is empty", f.Reason)
					}
					return
				}
				if !slices.ContainsFunc(f.Changes, func(c Change) bool { return strings.Contains(c.Key, tt.wantKey) }) {
					t.Errorf("changes do not mention %q:\n%s", tt.wantKey, f)
				}
			})
		}
	})
}

func all(sql string) map[Dialect]string {
	return map[Dialect]string{SQLite: sql, Postgres: sql, MySQL: sql}
}

// TestVerifyFailingStep: an up or down that fails is that migration's
// failure, named with the database's error, not an error that hides which
// migrations were checked.
func TestVerifyFailingStep(t *testing.T) {
	tests := []struct {
		name, second, want string
	}{
		{"down with a syntax error", "-- +goose Up\nCREATE TABLE u (id INTEGER);\n-- +goose Down\nDROP TABLEX u;\n", "down failed: "},
		{"up that fails", "-- +goose Up\nALTER TABLE no_such_table ADD COLUMN x INTEGER;\n-- +goose Down\nSELECT 1;\n", "up failed: "},
		{"up that fails after down", "-- +goose Up\nCREATE TABLE u (id INTEGER PRIMARY KEY);\nINSERT INTO users (id, email) VALUES (1, 'a');\n-- +goose Down\nDROP TABLE u;\n", "up after down failed: "},
	}
	forEachDialect(t, func(t *testing.T, base Target) {
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				fsys := files("00001_users.sql", usersV1, "00002_second.sql", tt.second, "00003_orders.sql", ordersV2)
				rep, err := Verify(t.Context(), base.raw, fsys)
				if !errors.Is(err, ErrVerify) {
					t.Fatalf("Verify = %v, want ErrVerify", err)
				}
				if len(rep.Checked) != 2 || !rep.Checked[0].OK || rep.Checked[1].OK {
					t.Errorf("checked %+v, want 00001 ok and 00002 failed", rep.Checked)
				}
				if len(rep.Failures) != 1 || rep.Failures[0].File != "00002_second.sql" || !strings.HasPrefix(rep.Failures[0].Reason, tt.want) {
					t.Errorf("failures %+v, want one for 00002_second.sql starting %q", rep.Failures, tt.want)
				}
			})
		}
	})
}
