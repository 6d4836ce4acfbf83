package databases

import (
	"context"
	"sync"
	"time"

	"github.com/a8e2c47e/switchback/migrate"
)

// describeTimeout bounds what Describe waits for one database, so that
// one unreachable server does not hold up the list.
const describeTimeout = 5 * time.Second

// Info is what the admin API shows of a database: never its address.
type Info struct {
	Name    string          `json:"name"`
	Dialect migrate.Dialect `json:"dialect"`
	// Migrations is the configured migrations directory; empty when none
	// is, and then only Version is known.
	Migrations string `json:"migrations,omitempty"`
	// Version is the goose version applied; 0 when none.
	Version int64 `json:"version"`
	// Pending counts the directory's migrations not applied.
	Pending int `json:"pending"`
	// LastContract is the newest contract migration applied: code older
	// than it may no longer run on this schema.
	LastContract *Migration `json:"last_contract,omitempty"`
	// Error says why the rest could not be read (an unreachable server, a
	// bad directory); the address in it is redacted.
	Error string `json:"error,omitempty"`
}

// Migration names one applied migration.
type Migration struct {
	Version   int64     `json:"version"`
	File      string    `json:"file"`
	AppliedAt time.Time `json:"applied_at,omitzero"`
}

// Describe reads every database's Info, in name order, all at once so
// that unreachable servers cost one timeout, not one each. A database
// that cannot be read has its Error set; the others are still listed. A
// nil Registry lists none.
func (r *Registry) Describe(ctx context.Context) []Info {
	names := r.Names()
	out := make([]Info, len(names))
	var wg sync.WaitGroup
	for i, name := range names {
		wg.Go(func() { out[i] = r.dbs[name].describe(ctx) })
	}
	wg.Wait()
	return out
}

func (d *database) describe(ctx context.Context) Info {
	ctx, cancel := context.WithTimeout(ctx, describeTimeout)
	defer cancel()
	info := Info{Name: d.name, Dialect: d.target.Dialect, Migrations: d.dir}
	pool, err := d.connect(ctx)
	if err != nil {
		info.Error = err.Error()
		return info
	}
	if info.Version, err = d.version(ctx, pool); err != nil {
		info.Error = err.Error()
		return info
	}
	if d.dir == "" {
		return info
	}
	m, err := d.migrator(ctx)
	if err != nil {
		info.Error = err.Error()
		return info
	}
	defer m.Close()
	statuses, err := m.Status(ctx)
	if err != nil {
		info.Error = "database " + d.name + ": " + redactErr(err)
		return info
	}
	for _, s := range statuses {
		switch {
		case s.State != stateApplied:
			info.Pending++
		case s.Phase == migrate.PhaseContract:
			info.LastContract = &Migration{Version: s.Version, File: s.File, AppliedAt: s.AppliedAt}
		}
	}
	return info
}
