package control

import (
	"context"
	"slices"
	"time"

	"go.uber.org/zap"

	"github.com/a8e2c47e/switchback/gateway"
	"github.com/a8e2c47e/switchback/migrate"
	"github.com/a8e2c47e/switchback/release"
)

// CheckTraffic asks the compatibility gate (release.Gate) about moving
// deployment name from one config to the next: it returns the
// *release.IncompatibleError of the first pool taking traffic whose code
// needs a schema a contract migration applied since took away, or nil.
// Callers refuse the move unless forced, and record the override.
//
// The gate fails open: without configured databases, or when the
// releases or the databases cannot be read, it lets the move through (and
// logs why), since the guard's fallback must never wait on a database.
func (c *Control) CheckTraffic(ctx context.Context, name string, from, to gateway.Config) *release.IncompatibleError {
	return c.gate(ctx, name, from, to, nil)
}

// gateTimeout bounds the gate's reads: the releases, each database's
// applied migrations.
const gateTimeout = time.Second

// Gates reports whether the compatibility gate has anything to check:
// whether databases are configured. Callers skip the reads it needs when
// not.
func (c *Control) Gates() bool { return c.schemas != nil }

// gate is CheckTraffic with known, the code of pools the caller knows
// better (a rollback knows what ran before its release).
func (c *Control) gate(ctx context.Context, name string, from, to gateway.Config, known map[string]release.Code) *release.IncompatibleError {
	if c.schemas == nil {
		return nil
	}
	entering := release.Entering(from.Weights, to.Weights)
	if len(entering) == 0 {
		return nil
	}
	// The gate lets traffic through when it cannot read what it needs;
	// it must also not spend the time of the write it guards (a guard
	// fallback has 2 s in all) waiting for an unreachable database.
	ctx, cancel := context.WithTimeout(ctx, gateTimeout)
	defer cancel()
	var rs []release.Release
	if len(known) < len(entering) {
		var err error
		if rs, err = c.store.ListReleases(ctx, name); err != nil {
			c.log.Warn("compatibility gate: cannot read the releases; letting the traffic through", zap.String("deployment", name), zap.Error(err))
			return nil
		}
	}
	applied := map[string][]release.Migration{}
	for _, pool := range entering {
		code, ok := known[pool]
		if !ok {
			p := to.Pools[pool]
			code, ok = release.CodeOn(pool, release.PoolState{Upstreams: p.Upstreams, Label: p.Release}, rs)
		}
		if !ok {
			continue
		}
		for db := range code.Databases {
			if _, done := applied[db]; done || !slices.Contains(c.schemas.Names(), db) {
				continue
			}
			st, err := c.schemas.Applied(ctx, db)
			if err != nil {
				c.log.Warn("compatibility gate: cannot read the applied migrations; not checking this database", zap.String("database", db), zap.Error(err))
				continue
			}
			applied[db] = migrations(slices.DeleteFunc(st, func(s migrate.Status) bool { return s.State != "applied" }))
		}
		if e := release.Gate(code, applied); e != nil {
			return e
		}
	}
	return nil
}
