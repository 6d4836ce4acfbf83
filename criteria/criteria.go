// Package criteria measures external rollback criteria: signals the proxy
// cannot see (a database's connections, a Prometheus query, a health
// endpoint). It knows nothing of Caddy or of the store: a Prober takes a
// gateway.Criterion and returns a Sample; Track keeps how long a breach has
// held; the guard (guard.Judge) decides what a breach does.
package criteria

import (
	"context"
	"database/sql"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/a8e2c47e/switchback/gateway"
	"github.com/a8e2c47e/switchback/guard"
	"github.com/a8e2c47e/switchback/migrate"
)

// probeTimeout bounds a database or Prometheus probe.
const probeTimeout = 2 * time.Second

// Prober measures criteria. Its zero value has no databases and uses
// http.DefaultClient.
type Prober struct {
	// Databases are the gateway's `database NAME DSN` lines, opened.
	Databases map[string]*Database
	// Client makes the Prometheus and http probes.
	Client *http.Client
}

func (p *Prober) client() *http.Client {
	if p.Client != nil {
		return p.Client
	}
	return http.DefaultClient
}

// Probe measures c once at now. A failed probe is a Sample with Err set:
// for an http criterion it is a breach (the endpoint is not healthy); for
// the others it is no verdict, since a monitoring outage is not the
// application's.
func (p *Prober) Probe(ctx context.Context, c gateway.Criterion, now time.Time) guard.Sample {
	s := guard.Sample{Time: now}
	switch c.Kind {
	case gateway.CriterionDatabase:
		db, ok := p.Databases[c.Database]
		if !ok {
			s.Err = fmt.Sprintf("no database %q in the gateway's switchback option (add 'database %s DSN')", c.Database, c.Database)
			return s
		}
		ctx, cancel := context.WithTimeout(ctx, probeTimeout)
		defer cancel()
		used, maxConns, err := db.Connections(ctx)
		if err != nil {
			s.Err = err.Error()
			return s
		}
		s.Value = 100 * float64(used) / float64(maxConns)
		s.Text = fmt.Sprintf("%.1f%% of connections (%d of %d)", s.Value, used, maxConns)
		s.Breach = s.Value > c.Above
	case gateway.CriterionPrometheus:
		ctx, cancel := context.WithTimeout(ctx, probeTimeout)
		defer cancel()
		v, err := Query(ctx, p.client(), c.URL, c.Query)
		if err != nil {
			s.Err = err.Error()
			return s
		}
		s.Value = v
		s.Text = fmt.Sprintf("%s = %g", c.Query, v)
		s.Breach = v > c.Above
	case gateway.CriterionHTTP:
		within := c.Within.Std(gateway.DefaultCriterionWithin)
		status, took, err := Check(ctx, p.client(), c.URL, within)
		s.Value = float64(status)
		switch {
		case err != nil:
			s.Err, s.Breach = err.Error(), true
			s.Text = err.Error()
		case status != c.Status:
			s.Breach = true
			s.Text = fmt.Sprintf("status %d, want %d", status, c.Status)
		default:
			s.Text = fmt.Sprintf("status %d in %v", status, took.Round(time.Millisecond))
		}
	default:
		s.Err = fmt.Sprintf("unknown criterion kind %q; want %s", c.Kind, gateway.CriterionKinds)
	}
	return s
}

// Database is a database whose connections a criterion counts.
type Database struct {
	// Name is the database line's name; URL its DSN with the password
	// redacted, the only form any message shows.
	Name, URL string
	dialect   migrate.Dialect
	db        *sql.DB
}

// OpenDatabase prepares a database for counting its connections, from a
// DSN migrate.ParseTarget accepts (postgres://…, mysql://… or a Go MySQL
// driver DSN). It does not connect: a database down at start must not stop
// the gateway; its probes report the error instead. Errors show the DSN
// redacted.
func OpenDatabase(name, dsn string) (*Database, error) {
	t, err := migrate.ParseTarget(dsn)
	if err != nil {
		return nil, fmt.Errorf("database %s: %w", name, err)
	}
	var driver string
	switch t.Dialect {
	case migrate.Postgres:
		driver = "pgx"
	case migrate.MySQL:
		driver = "mysql"
	default:
		return nil, fmt.Errorf("database %s %q: want PostgreSQL or MySQL/MariaDB; SQLite has no connections to count", name, t.URL)
	}
	db, err := sql.Open(driver, t.DSN)
	if err != nil {
		return nil, fmt.Errorf("database %s %q: %w", name, t.URL, err)
	}
	// One connection: the probe's own is counted too, and it must never
	// be the one that fills the server.
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	return &Database{Name: name, URL: t.URL, dialect: t.Dialect, db: db}, nil
}

// Connections returns how many connections the server has open and its
// maximum.
func (d *Database) Connections(ctx context.Context) (used, maxConns int64, err error) {
	switch d.dialect {
	case migrate.Postgres:
		err = d.db.QueryRowContext(ctx,
			`SELECT (SELECT COALESCE(sum(numbackends), 0) FROM pg_stat_database)::bigint, current_setting('max_connections')::bigint`).
			Scan(&used, &maxConns)
	default:
		var name string
		if err = d.db.QueryRowContext(ctx, `SHOW GLOBAL STATUS LIKE 'Threads_connected'`).Scan(&name, &used); err == nil {
			err = d.db.QueryRowContext(ctx, `SELECT @@max_connections`).Scan(&maxConns)
		}
	}
	if err != nil {
		return 0, 0, fmt.Errorf("count connections of %s (%s): %s", d.Name, d.URL, redactErr(err))
	}
	if maxConns <= 0 {
		return 0, 0, fmt.Errorf("count connections of %s (%s): max_connections is %d", d.Name, d.URL, maxConns)
	}
	return used, maxConns, nil
}

// redactErr is err's text; drivers may quote the address they dialled,
// so anything that looks like one is redacted.
func redactErr(err error) string {
	fields := strings.Fields(err.Error())
	for i, f := range fields {
		if strings.Contains(f, "@") {
			fields[i] = migrate.Redact(f)
		}
	}
	return strings.Join(fields, " ")
}

// Close closes the connection pool.
func (d *Database) Close() error { return d.db.Close() }

// Track folds a new sample into a criterion's state: a breach keeps the
// time it began, so the guard can tell whether it has held for `for`.
func Track(st guard.CriterionState, s guard.Sample) guard.CriterionState {
	switch {
	case s.Breach && st.Last.Breach && !st.Since.IsZero():
		// still breaching since st.Since
	case s.Breach:
		st.Since = s.Time
	default:
		st.Since = time.Time{}
	}
	st.Last = s
	return st
}
