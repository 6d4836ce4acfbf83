package e2e

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/a8e2c47e/switchback/internal/testharness"
	"github.com/a8e2c47e/switchback/migrate"
	"github.com/a8e2c47e/switchback/release"
)

// BenchmarkReleaseRollback times issue 11's full chain on 3 instances: a
// release that raised a flag, put v2 on green with all traffic, applied a
// change set to two services and ran an expand migration, then `switchback
// release rollback`: from the command to every part back, each part timed
// as it is seen back: traffic on blue at every instance, the services'
// watchers on their previous configuration, the schema dump as before. On
// PostgreSQL when SWITCHBACK_TEST_POSTGRES is set, else on SQLite; the
// sub-benchmark names the database.
func BenchmarkReleaseRollback(b *testing.B) {
	dialect := migrate.SQLite
	if os.Getenv(testharness.PostgresEnv) != "" {
		dialect = migrate.Postgres
	}
	b.Run(string(dialect), func(b *testing.B) {
		for b.Loop() {
			// ns/op is the rollback's alone, not the setup's.
			b.StopTimer()
			c := newReleaseChain(b, dialect, 3, false)
			c.forward(b)

			b.StartTimer()
			began := time.Now()
			c.sb(b, "release", "rollback", "v2", "--reason", "bench")
			var traffic, watchers, schema time.Duration
			since := func(d *time.Duration, back bool) {
				if *d == 0 && back {
					*d = time.Since(began)
				}
			}
			testharness.Eventually(b, 2*testharness.Wait, func() (bool, string) {
				since(&traffic, c.servedBy("blue"))
				since(&watchers, c.watchersBack())
				since(&schema, c.schema(b) == c.before.schema)
				return traffic > 0 && watchers > 0 && schema > 0, fmt.Sprintf("back after: traffic %s, watchers %s, schema %s", traffic, watchers, schema)
			})
			b.StopTimer()
			all := max(traffic, watchers, schema)
			// The record says rolled_back just after the last part is back.
			var r release.Release
			testharness.Eventually(b, testharness.Wait, func() (bool, string) {
				r = c.release(b)
				return r.Status == release.RolledBack, "every part back, but the release is " + string(r.Status)
			})
			for _, d := range c.backAsBefore(b) {
				b.Error(d)
			}
			b.ReportMetric(all.Seconds(), "s_to_all_back")
			b.ReportMetric(traffic.Seconds(), "s_traffic")
			b.ReportMetric(watchers.Seconds(), "s_watchers")
			b.ReportMetric(schema.Seconds(), "s_schema")
			b.ReportMetric(r.Rollback.Finished.Sub(r.Rollback.Requested).Seconds(), "s_recorded")
			b.StartTimer() // b.Loop wants it running
		}
	})
}

// servedBy reports whether every live gateway sends a sample of users to
// pool.
func (c *releaseChain) servedBy(pool string) bool {
	for _, g := range c.live() {
		for i := range 20 {
			e, err := testharness.Ask(context.Background(), g.base, fmt.Sprintf("user-%d", i))
			if err != nil || e.Pool != pool {
				return false
			}
		}
	}
	return true
}

// watchersBack reports whether the services' watchers have their
// configurations from before the release.
func (c *releaseChain) watchersBack() bool {
	for _, name := range releaseServices {
		if !sameJSON(c.watch.config(name), c.before.services[name]) {
			return false
		}
	}
	return true
}
