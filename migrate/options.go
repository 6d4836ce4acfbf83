package migrate

import (
	"errors"
	"fmt"
	"io"
	"time"
)

// Option configures Open, OpenDB, Verify or Lint. Options can fail: a bad
// value, or an option that does not concern the function it is given to,
// is reported before anything is read or touched.
type Option interface {
	apply(*config) error
}

type optionFunc func(*config) error

func (f optionFunc) apply(c *config) error { return f(c) }

// use says which function the options are applied for.
type use int

const (
	useMigrator use = iota // Open, OpenDB, Verify
	useLint
)

type config struct {
	use use

	now func() time.Time

	// Migrator.
	lockTimeout       time.Duration
	allowIrreversible bool
	readOnly          bool

	// Lint.
	unused time.Duration
	usage  []usageSource
}

type usageSource struct {
	name string
	r    io.Reader
}

// newConfig applies opts over the defaults for u.
func newConfig(u use, opts []Option) (config, error) {
	cfg := config{use: u, now: time.Now, lockTimeout: 5 * time.Minute, unused: 30 * 24 * time.Hour}
	for _, o := range opts {
		if o == nil {
			return config{}, errors.New("option must not be nil")
		}
		if err := o.apply(&cfg); err != nil {
			return config{}, err
		}
	}
	return cfg, nil
}

// only refuses an option given to a function it does not concern.
func (c *config) only(option string, u use) error {
	if c.use == u {
		return nil
	}
	if u == useLint {
		return fmt.Errorf("%s: applies to Lint only", option)
	}
	return fmt.Errorf("%s: applies to Open, OpenDB and Verify only", option)
}

// WithNow sets the clock: snapshot and journal timestamps for a Migrator,
// the end of the unused window for Lint.
func WithNow(now func() time.Time) Option {
	return optionFunc(func(c *config) error {
		if now == nil {
			return errors.New("WithNow: now must not be nil")
		}
		c.now = now
		return nil
	})
}

// WithLockTimeout sets how long up, down and snapshot restore wait for a
// concurrent migrator to release the migration lock. Default 5 minutes.
func WithLockTimeout(d time.Duration) Option {
	return optionFunc(func(c *config) error {
		if err := c.only("WithLockTimeout", useMigrator); err != nil {
			return err
		}
		if d < time.Second {
			return fmt.Errorf("lock timeout %s: accepted: 1s or more", d)
		}
		c.lockTimeout = d
		return nil
	})
}

// WithAllowIrreversible lets Up apply, and Down un-record, migrations
// whose Down section is missing or empty. Without it both refuse such a
// migration (ErrIrreversible) before running anything. What it let
// through is reported (Applied.Irreversible).
func WithAllowIrreversible() Option {
	return optionFunc(func(c *config) error {
		if err := c.only("WithAllowIrreversible", useMigrator); err != nil {
			return err
		}
		c.allowIrreversible = true
		return nil
	})
}

// WithReadOnly opens a Migrator for reading (Status, Snapshots) only: a
// missing SQLite file is refused (ErrNoDatabase) instead of created, and
// the SQLite file is opened read-only. Up, Down, Resolve and
// RestoreSnapshot on a read-only Migrator fail.
func WithReadOnly() Option {
	return optionFunc(func(c *config) error {
		if err := c.only("WithReadOnly", useMigrator); err != nil {
			return err
		}
		c.readOnly = true
		return nil
	})
}

// WithUsage adds a query log that proves what a contract migration drops
// is unused. The format is detected: PostgreSQL csvlog, MySQL general log,
// or TIMESTAMP<TAB>QUERY lines. Several logs are read as one.
func WithUsage(name string, r io.Reader) Option {
	return optionFunc(func(c *config) error {
		if err := c.only("WithUsage", useLint); err != nil {
			return err
		}
		if r == nil {
			return fmt.Errorf("usage log %q: reader must not be nil", name)
		}
		c.usage = append(c.usage, usageSource{name, r})
		return nil
	})
}

// WithUnusedFor sets how long a dropped object must have been unused.
// Default 30 days.
func WithUnusedFor(d time.Duration) Option {
	return optionFunc(func(c *config) error {
		if err := c.only("WithUnusedFor", useLint); err != nil {
			return err
		}
		if d < 24*time.Hour {
			return fmt.Errorf("unused-for %s: accepted: 24h or more", d)
		}
		c.unused = d
		return nil
	})
}
