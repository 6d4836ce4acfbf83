package runbook

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/a8e2c47e/switchback/admin"
	"github.com/a8e2c47e/switchback/drill/result"
	"github.com/a8e2c47e/switchback/migrate"
	"github.com/a8e2c47e/switchback/release"
)

// Book is what a runbook is written from: a deployment's live
// configuration, read through the admin API (and the database, for
// migrations), at one moment.
type Book struct {
	Admin      string
	Deployment admin.Deployment
	Generated  time.Time
	// Services are the services with a change to undo (version 2 or
	// more).
	Services []admin.Service
	// Database and MigrationsDir are the migrate --db and --dir the
	// runbook was asked about; Migrations their status, newest last, and
	// DatabaseError why it could not be read.
	Database      string
	MigrationsDir string
	Migrations    []migrate.Status
	DatabaseError string
	// DatabaseName and Config, instead of Database: the gateway's named
	// database, read through its Caddyfile Config. Databases are the
	// names the gateway lists (GET /api/v1/databases), offered when no
	// database was given.
	DatabaseName string
	Config       string
	Databases    []string
	// Release is the deployment's newest release not rolled back; empty
	// when it has none, or ReleaseError says why it could not be read.
	Release      *release.Release
	ReleaseError string
	// Drills are the last drill of each pattern, by pattern; DrillsError
	// says why they could not be read.
	Drills      map[string]result.Result
	DrillsError string
}

// Source says where Live reads from.
type Source struct {
	Client     *admin.Client
	Admin      string
	Deployment string
	// Database and MigrationsDir, when Database is set, are read for the
	// migration section; the database is opened read-only.
	Database      string
	MigrationsDir string
	// DatabaseName, instead of Database, is a database of the gateway's
	// `database NAME DSN { migrations DIR }` line in the Caddyfile
	// Config, whose address and directory Resolve reads
	// (caddymodule.ResolveDatabase in the binary).
	DatabaseName string
	Config       string
	Resolve      migrate.DatabaseResolver
	Now          func() time.Time
}

// Live reads what the runbook of s.Deployment needs. Only the deployment
// itself is required: every other part that cannot be read is recorded in
// the Book, and its section says so.
func Live(ctx context.Context, s Source) (Book, error) {
	now := s.Now
	if now == nil {
		now = time.Now
	}
	b := Book{Admin: cmp.Or(s.Admin, admin.DefaultAdminURL), Generated: now().UTC(), Database: s.Database, MigrationsDir: cmp.Or(s.MigrationsDir, "./migrations")}
	d, err := s.Client.Status(ctx, s.Deployment)
	if err != nil {
		return Book{}, fmt.Errorf("deployment %s: %w", s.Deployment, err)
	}
	b.Deployment = d

	var svcs admin.ServiceList
	if err := s.Client.Get(ctx, "/api/v1/services", &svcs); err != nil {
		return Book{}, fmt.Errorf("services: %w", err)
	}
	for _, sv := range svcs.Services {
		if sv.Version >= 2 {
			b.Services = append(b.Services, sv)
		}
	}
	slices.SortFunc(b.Services, func(x, y admin.Service) int { return cmp.Compare(x.Name, y.Name) })

	switch {
	case s.DatabaseName != "":
		b.Database, b.DatabaseName, b.Config = "", s.DatabaseName, cmp.Or(s.Config, "./Caddyfile")
		b.Migrations, b.DatabaseError = namedStatus(ctx, s.Resolve, b.Config, s.DatabaseName)
	case s.Database != "":
		b.Migrations, err = migrationStatus(ctx, s.Database, b.MigrationsDir)
		if err != nil {
			b.DatabaseError = err.Error()
		}
	default:
		// Older gateways have no such list; the section then only says
		// how to name a database.
		var dbs admin.DatabaseList
		if s.Client.Get(ctx, "/api/v1/databases", &dbs) == nil {
			for _, d := range dbs.Databases {
				b.Databases = append(b.Databases, d.Name)
			}
		}
	}

	var rels struct {
		Releases []release.Release `json:"releases"`
	}
	switch err := s.Client.Get(ctx, "/api/v1/releases?deployment="+url.QueryEscape(s.Deployment), &rels); {
	case notServed(err):
		b.ReleaseError = "this gateway's admin API has no releases (GET /api/v1/releases)"
	case err != nil:
		b.ReleaseError = err.Error()
	default:
		for _, r := range rels.Releases { // newest first
			if r.Status == release.Finished || r.Status == release.Open || r.Status == release.RollbackFailed {
				b.Release = &r
				break
			}
		}
	}

	var drills struct {
		Drills []result.Result `json:"drills"`
	}
	// Drills run in staging or a sandbox, not on the deployment this
	// runbook is for: the last drill of each pattern, wherever it ran,
	// is the proof that the commands work.
	switch err := s.Client.Get(ctx, "/api/v1/drills?limit=1000", &drills); {
	case notServed(err):
		b.DrillsError = "this gateway's admin API keeps no drill history (GET /api/v1/drills)"
	case err != nil:
		b.DrillsError = err.Error()
	default:
		b.Drills = LastDrills(drills.Drills)
	}
	return b, nil
}

// LastDrills keeps the newest drill of each pattern that ran (a drill
// that was not applicable proves nothing about the path).
func LastDrills(all []result.Result) map[string]result.Result {
	out := map[string]result.Result{}
	for _, r := range all {
		if r.NotApplicable != "" {
			continue
		}
		if prev, ok := out[r.Pattern]; !ok || r.Started.After(prev.Started) {
			out[r.Pattern] = r
		}
	}
	return out
}

func notServed(err error) bool {
	var ae *admin.APIError
	return errors.As(err, &ae) && (ae.Status == http.StatusNotFound || ae.Status == http.StatusMethodNotAllowed)
}

// migrationStatus reads the migrations' status without changing anything.
func migrationStatus(ctx context.Context, db, dir string) ([]migrate.Status, error) {
	if _, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("migrations directory %s: %w", dir, err)
	}
	m, err := migrate.Open(ctx, db, os.DirFS(dir), migrate.WithReadOnly())
	if err != nil {
		return nil, err
	}
	defer m.Close()
	return m.Status(ctx)
}

// namedStatus reads the migrations' status of the gateway's database
// name, found in its Caddyfile config, without changing anything; the
// error is said as the runbook's migration section says it.
func namedStatus(ctx context.Context, resolve migrate.DatabaseResolver, config, name string) ([]migrate.Status, string) {
	if resolve == nil {
		return nil, "this program cannot read a gateway's Caddyfile; give --db URL --dir DIR"
	}
	dsn, dir, err := resolve(config, name)
	if err != nil {
		return nil, err.Error()
	}
	if dir == "" {
		return nil, fmt.Sprintf("database %s has no migrations directory in %s ('database %s DSN { migrations DIR }')", name, config, name)
	}
	st, err := migrationStatus(ctx, dsn, dir)
	if err != nil {
		// The address may hold a password: say it redacted.
		return nil, strings.ReplaceAll(err.Error(), dsn, migrate.Redact(dsn))
	}
	return st, ""
}

// Params are the rollback parameters the live state implies:
//
//   - flip: all traffic to the retained rollback target if there is one,
//     else, from a split, to the pool that has most of it (the stable one
//     during a canary); with one pool holding everything, a flip to the
//     other.
//   - flag: every flag that is on for anyone.
//   - config: every service with a change to undo.
//   - migration: down to the version applied before the newest one, and
//     the newest one's snapshot back, if it took one.
//   - release: the newest release not rolled back, restoring data when it
//     changed a database.
func (b Book) Params() Params {
	d := b.Deployment
	p := Params{Deployment: d.Name, Admin: b.Admin, Database: b.Database, MigrationsDir: b.MigrationsDir,
		DatabaseName: b.DatabaseName, Config: b.Config}
	pools := make([]string, 0, len(d.Pools))
	for name := range d.Pools {
		pools = append(pools, name)
	}
	slices.Sort(pools)
	for _, name := range pools {
		if _, ok := d.Retained[name]; ok {
			p.Pool = name
		}
	}
	if p.Pool == "" && !slices.ContainsFunc(pools, func(n string) bool { return d.Weights[n] >= 100 }) {
		for _, name := range pools {
			if p.Pool == "" || d.Weights[name] > d.Weights[p.Pool] {
				p.Pool = name
			}
		}
	}
	if p.Pool != "" {
		p.Pools = pools
	}
	for name, f := range d.Flags {
		if f.Percent > 0 {
			p.Flags = append(p.Flags, name)
		}
	}
	slices.Sort(p.Flags)
	if len(b.Services) > 0 {
		p.Services = map[string]uint64{}
		for _, s := range b.Services {
			p.Services[s.Name] = 0
		}
	}
	var applied []migrate.Status
	for _, s := range b.Migrations {
		if s.State != "pending" {
			applied = append(applied, s)
		}
	}
	if n := len(applied); n > 0 {
		top := applied[n-1]
		if n > 1 {
			p.DownTo = applied[n-2].Version
		}
		if len(top.Snapshot) > 0 {
			p.Snapshots = []int64{top.Version}
		}
	} else {
		p.Database, p.DatabaseName = "", "" // nothing to roll back
	}
	if b.Release != nil {
		p.Release = b.Release.ID
		p.RestoreData = len(b.Release.Databases) > 0
	}
	return p
}
