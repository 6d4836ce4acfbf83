// Package databases is the registry of the databases a gateway knows by
// name (the `database NAME DSN { migrations DIR }` lines of the switchback
// global option): their goose version, the migrations applied with their
// expand/contract phase, and a down that refuses what cannot be rolled back
// safely (a contract or irreversible migration), restoring data snapshots
// on request.
//
// Files: registry.go (New, the lazily opened pools), schema.go (Version,
// Applied, PlanDown, Down), refused.go (RefusedError), describe.go (what
// the admin API lists).
//
// A DSN holds a password: it is given to New and never leaves the
// registry. Messages name the database; only New's, about the
// configuration itself, show the address, redacted (migrate.Redact). It knows nothing of Caddy or of the
// store.
package databases

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/a8e2c47e/switchback/gateway"
	"github.com/a8e2c47e/switchback/migrate"
)

// Config is one database line, its placeholders already replaced.
type Config struct {
	// Name is what criteria, releases and `migrate --database` call it.
	Name string
	// DSN is an address migrate.ParseTarget accepts (sqlite:PATH,
	// postgres://…, mysql://… or a Go MySQL driver DSN). It may hold a
	// password: the registry never shows it.
	DSN string
	// Migrations is the migrations directory, without which the gateway
	// can read the version but cannot list phases or roll anything down.
	Migrations string
}

// ErrUnreachable is wrapped by every error of a database that could not
// be connected to.
var ErrUnreachable = errors.New("databases: cannot connect")

// Registry holds the named databases. Its methods are safe for concurrent
// use; nothing connects before a method needs the database.
type Registry struct {
	names []string // sorted
	dbs   map[string]*database
}

type database struct {
	name   string
	target migrate.Target
	dir    string

	// mu protects pool, opened on first use, and serialises this
	// process's downs of the database (other processes are kept out by
	// the migration lock).
	mu   sync.Mutex
	pool *sql.DB
	// down is held for the whole of a Down.
	down sync.Mutex
}

// New checks every Config and builds a registry; it does not connect. A
// bad name, a repeated name, an address that does not parse or a
// migrations directory that does not exist is a *gateway.FieldError
// naming the database and showing the address redacted.
func New(configs []Config) (*Registry, error) {
	r := &Registry{dbs: make(map[string]*database, len(configs))}
	for _, c := range configs {
		if err := gateway.CheckName("database", c.Name); err != nil {
			return nil, err
		}
		if _, dup := r.dbs[c.Name]; dup {
			return nil, &gateway.FieldError{Field: "database", Value: strconv.Quote(c.Name), Want: "given twice; give each database one line"}
		}
		if strings.TrimSpace(c.DSN) == "" {
			return nil, &gateway.FieldError{Field: "database " + c.Name, Value: `""`,
				Want: "the DSN is empty (an unset environment variable?); accepted: sqlite:PATH, postgres://USER@HOST:PORT/DB or mysql://USER@HOST:PORT/DB"}
		}
		t, err := migrate.ParseTarget(c.DSN)
		if err != nil {
			// ParseTarget's message quotes the value redacted and says
			// what is accepted.
			return nil, &gateway.FieldError{Field: "database " + c.Name, Want: err.Error()}
		}
		if c.Migrations != "" {
			if st, err := os.Stat(c.Migrations); err != nil || !st.IsDir() {
				why := "not a directory"
				if err != nil {
					why = errors.Unwrap(err).Error()
				}
				return nil, &gateway.FieldError{Field: "database " + c.Name + " migrations", Value: strconv.Quote(c.Migrations),
					Want: why + "; accepted: a directory of NUMBER_name.sql migrations"}
			}
		}
		r.dbs[c.Name] = &database{name: c.Name, target: t, dir: c.Migrations}
		r.names = append(r.names, c.Name)
	}
	slices.Sort(r.names)
	return r, nil
}

// Names returns the databases' names, sorted. A nil Registry has none.
func (r *Registry) Names() []string {
	if r == nil {
		return nil
	}
	return slices.Clone(r.names)
}

// Close closes the pools opened so far. Safe on a nil Registry, and more
// than once.
func (r *Registry) Close() error {
	if r == nil {
		return nil
	}
	var errs []error
	for _, name := range r.names {
		d := r.dbs[name]
		d.mu.Lock()
		if d.pool != nil {
			errs = append(errs, d.pool.Close())
			d.pool = nil
		}
		d.mu.Unlock()
	}
	return errors.Join(errs...)
}

// lookup finds a database by name, or says which names are configured.
func (r *Registry) lookup(name string) (*database, error) {
	if r != nil {
		if d, ok := r.dbs[name]; ok {
			return d, nil
		}
	}
	want := "no database is configured; add 'database NAME DSN { migrations DIR }' to the switchback global option"
	if names := r.Names(); len(names) > 0 {
		want = "accepted: " + strings.Join(names, ", ") + " (the switchback global option's database lines)"
	}
	return nil, &gateway.FieldError{Field: "database", Value: strconv.Quote(name), Want: want}
}

// connect returns the database's pool, connected. The pool is opened on
// first use and kept; a failed connection is an error naming the database
// and wrapping ErrUnreachable. It does not show the address, which the
// admin API must never return; what the driver says is shown with any
// address in it redacted.
func (d *database) connect(ctx context.Context) (*sql.DB, error) {
	if d.target.Dialect == migrate.SQLite {
		// Opening a missing file would create an empty database; reading
		// must not.
		if _, err := os.Stat(d.target.Database); err != nil {
			return nil, unreachable(d.name, "SQLite file: "+errors.Unwrap(err).Error())
		}
	}
	d.mu.Lock()
	if d.pool == nil {
		pool, err := sql.Open(driver(d.target.Dialect), d.target.DSN)
		if err != nil {
			d.mu.Unlock()
			return nil, unreachable(d.name, redactErr(err))
		}
		d.pool = pool
	}
	pool := d.pool
	d.mu.Unlock()
	if err := pool.PingContext(ctx); err != nil {
		return nil, unreachable(d.name, redactErr(err))
	}
	return pool, nil
}

// unreachableError says which database could not be connected to, and
// why; it is ErrUnreachable (errors.Is).
type unreachableError struct{ msg string }

func unreachable(name, why string) error {
	return &unreachableError{msg: fmt.Sprintf("database %s: cannot connect: %s", name, why)}
}

func (e *unreachableError) Error() string        { return e.msg }
func (e *unreachableError) Is(target error) bool { return target == ErrUnreachable }

// migrator prepares the migrations directory, read again on every call so
// that migrations deployed since are seen, on the database's pool.
func (d *database) migrator(ctx context.Context) (*migrate.Migrator, error) {
	if d.dir == "" {
		return nil, &gateway.FieldError{Field: "database " + d.name + " migrations", Value: `""`,
			Want: fmt.Sprintf("no migrations directory is configured; accepted: 'database %s DSN { migrations DIR }' in the switchback global option", d.name)}
	}
	pool, err := d.connect(ctx)
	if err != nil {
		return nil, err
	}
	m, err := migrate.OpenDB(ctx, pool, d.target.Dialect, os.DirFS(d.dir), migrate.WithNow(time.Now))
	if err != nil {
		if errors.Is(err, migrate.ErrNoMigrations) || errors.Is(err, fs.ErrNotExist) {
			return nil, &gateway.FieldError{Field: "database " + d.name + " migrations", Value: strconv.Quote(d.dir),
				Want: err.Error() + "; accepted: a directory of NUMBER_name.sql migrations"}
		}
		return nil, fmt.Errorf("database %s: %s", d.name, redactErr(err))
	}
	return m, nil
}

// driver is the database/sql driver migrate registers for a dialect.
func driver(d migrate.Dialect) string {
	switch d {
	case migrate.Postgres:
		return "pgx"
	case migrate.MySQL:
		return "mysql"
	default:
		return "sqlite"
	}
}

// redactErr is err's text with anything that looks like an address
// redacted: drivers may quote the address they dialled.
func redactErr(err error) string {
	fields := strings.Fields(err.Error())
	for i, f := range fields {
		if strings.Contains(f, "@") || strings.Contains(f, "://") {
			fields[i] = migrate.Redact(f)
		}
	}
	return strings.Join(fields, " ")
}
