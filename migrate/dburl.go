package migrate

import (
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/go-sql-driver/mysql"
	"github.com/pressly/goose/v3"
)

// Dialect names a supported database family.
type Dialect string

const (
	SQLite   Dialect = "sqlite"
	Postgres Dialect = "postgres"
	MySQL    Dialect = "mysql"
)

// acceptedDB is quoted in every error about a --db value.
const acceptedDB = "sqlite:PATH, postgres://USER@HOST:PORT/DB or mysql://USER@HOST:PORT/DB"

// goose returns the goose dialect for d.
func (d Dialect) goose() goose.Dialect {
	switch d {
	case Postgres:
		return goose.DialectPostgres
	case MySQL:
		return goose.DialectMySQL
	default:
		return goose.DialectSQLite3
	}
}

// driver returns the database/sql driver name registered for d.
func (d Dialect) driver() string {
	switch d {
	case Postgres:
		return "pgx"
	case MySQL:
		return "mysql"
	default:
		return "sqlite"
	}
}

// transactionalDDL reports whether a failed migration is rolled back as a
// whole. MySQL commits implicitly after every DDL statement.
func (d Dialect) transactionalDDL() bool { return d != MySQL }

// Target is a parsed --db value.
type Target struct {
	Dialect Dialect
	// DSN is what sql.Open receives for Dialect's driver. It holds the
	// password: never show it.
	DSN string
	// URL is the value as the user wrote it with the password replaced by
	// xxxxx (Redact): the form every message shows.
	URL string
	// Database is the database name on PostgreSQL and MySQL, the file path on
	// SQLite.
	Database string

	// raw is the value as written, password included, from which targets
	// on the same server are derived.
	raw string
}

// ParseTarget parses a --db value: sqlite:PATH, postgres://… (or
// postgresql://…) and mysql://USER[:PASS]@HOST[:PORT]/DB[?params].
//
// A Go MySQL driver DSN, USER[:PASS]@tcp(HOST:PORT)/DB[?params], is also
// accepted (it is what many configs and CI variables hold) and means the
// same as its mysql:// form.
func ParseTarget(raw string) (Target, error) {
	t, err := parseTarget(raw)
	if err != nil {
		return Target{}, err
	}
	t.URL = Redact(t.raw)
	return t, nil
}

// parseTarget does ParseTarget's work; every error shows raw redacted.
func parseTarget(raw string) (Target, error) {
	if u, ok := mysqlURLFromDSN(raw); ok {
		return parseTarget(u)
	}
	shown := Redact(raw)
	scheme, rest, ok := strings.Cut(raw, ":")
	if !ok || raw == "" {
		return Target{}, fmt.Errorf("--db %q: missing scheme; accepted: %s", shown, acceptedDB)
	}
	switch strings.ToLower(scheme) {
	case "sqlite", "sqlite3":
		path := strings.TrimPrefix(rest, "//")
		if path == "" {
			return Target{}, fmt.Errorf("--db %q: empty SQLite path; accepted: sqlite:PATH such as sqlite:./app.db", shown)
		}
		return Target{Dialect: SQLite, DSN: sqliteDSN(path), raw: raw, Database: strings.SplitN(path, "?", 2)[0]}, nil
	case "postgres", "postgresql":
		u, err := parseURL(raw)
		if err != nil {
			return Target{}, fmt.Errorf("--db %q: %w; accepted: %s", shown, err, acceptedDB)
		}
		db := strings.TrimPrefix(u.Path, "/")
		if u.Host == "" || db == "" {
			return Target{}, fmt.Errorf("--db %q: host and database name are required; accepted: postgres://USER@HOST:PORT/DB", shown)
		}
		return Target{Dialect: Postgres, DSN: raw, raw: raw, Database: db}, nil
	case "mysql", "mariadb":
		dsn, db, err := mysqlDSN(raw)
		if err != nil {
			return Target{}, err
		}
		return Target{Dialect: MySQL, DSN: dsn, raw: raw, Database: db}, nil
	}
	return Target{}, fmt.Errorf("--db %q: unknown scheme %q; accepted: %s", shown, scheme, acceptedDB)
}

// parseURL is url.Parse with an error that does not repeat the URL, which
// may hold a password.
func parseURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	var ue *url.Error
	if errors.As(err, &ue) {
		return nil, ue.Err
	}
	return u, err
}

// sqliteDSN adds a busy timeout so that readers wait for a concurrent
// migrator's write instead of failing with SQLITE_BUSY, and makes every
// transaction BEGIN IMMEDIATE: a deferred one that has read and then
// writes while another connection writes (goose creating its version
// table outside the migration lock) fails at once, without waiting.
func sqliteDSN(path string) string {
	add := func(p, param string) string {
		sep := "?"
		if strings.Contains(p, "?") {
			sep = "&"
		}
		return p + sep + param
	}
	if !strings.Contains(path, "busy_timeout") {
		path = add(path, "_pragma=busy_timeout(30000)")
	}
	if !strings.Contains(path, "_txlock") {
		path = add(path, "_txlock=immediate")
	}
	return path
}

func mysqlDSN(raw string) (dsn, db string, err error) {
	shown := Redact(raw)
	u, err := parseURL(raw)
	if err != nil {
		return "", "", fmt.Errorf("--db %q: %w; accepted: mysql://USER@HOST:PORT/DB", shown, err)
	}
	db = strings.TrimPrefix(u.Path, "/")
	if u.Host == "" || db == "" {
		return "", "", fmt.Errorf("--db %q: host and database name are required; accepted: mysql://USER@HOST:PORT/DB", shown)
	}
	addr := u.Host
	if u.Port() == "" {
		addr += ":3306"
	}
	user := u.User.Username()
	if pass, ok := u.User.Password(); ok {
		user += ":" + pass
	}
	// goose reads its version table's timestamps as time.Time.
	q := u.Query()
	if !q.Has("parseTime") {
		q.Set("parseTime", "true")
	}
	dsn = fmt.Sprintf("%s@tcp(%s)/%s?%s", user, addr, db, q.Encode())
	if _, err := mysql.ParseDSN(dsn); err != nil {
		return "", "", fmt.Errorf("--db %q: %w; accepted: mysql://USER[:PASSWORD]@HOST[:PORT]/DB[?PARAM=VALUE]", shown, err)
	}
	return dsn, db, nil
}

// mysqlURLFromDSN rewrites a Go MySQL driver DSN over TCP as a mysql://
// URL; ok is false for anything else.
func mysqlURLFromDSN(raw string) (string, bool) {
	if !strings.Contains(raw, "@tcp(") || strings.Contains(raw, "://") {
		return "", false
	}
	cfg, err := mysql.ParseDSN(raw)
	if err != nil || cfg.Net != "tcp" {
		return "", false
	}
	u := url.URL{Scheme: "mysql", Host: cfg.Addr, Path: "/" + cfg.DBName}
	if cfg.Passwd != "" {
		u.User = url.UserPassword(cfg.User, cfg.Passwd)
	} else {
		u.User = url.User(cfg.User)
	}
	if _, q, ok := strings.Cut(raw, "?"); ok {
		u.RawQuery = q
	}
	return u.String(), true
}

// withDatabase returns t pointed at another database on the same server, or
// at another file for SQLite.
func (t Target) withDatabase(name string) (Target, error) {
	switch t.Dialect {
	case SQLite:
		return ParseTarget("sqlite:" + name)
	default:
		u, err := parseURL(t.raw)
		if err != nil {
			return Target{}, fmt.Errorf("parse %q: %w", t.URL, err)
		}
		u.Path = "/" + name
		return ParseTarget(u.String())
	}
}
