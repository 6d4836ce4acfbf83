package caddymodule

import (
	"errors"
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/a8e2c47e/switchback/gateway"
)

// parseCriterion reads one criterion line of a guard block:
//
//	criterion NAME database DB above PERCENT% [OPTIONS]
//	criterion NAME prometheus URL QUERY above NUMBER [OPTIONS]
//	criterion NAME http URL status CODE [within DURATION] [OPTIONS]
//
// OPTIONS are `for DURATION` (how long the breach must hold before it
// counts), `window DURATION` (how far back a change is blamed; default the
// guard's window) and `interval DURATION` (between probes; default 5s).
// DB names a `database DB DSN` line of the switchback global option.
func parseCriterion(d *caddyfile.Dispenser) (gateway.Criterion, error) {
	const usage = "want 'criterion NAME database DB above 90%%', 'criterion NAME prometheus URL QUERY above 5000' or 'criterion NAME http URL status 200 [within 500ms]'"
	args := d.RemainingArgs()
	if len(args) < 2 {
		return gateway.Criterion{}, d.Errf("criterion: %s", usage)
	}
	c := gateway.Criterion{Name: args[0], Kind: args[1]}
	rest := args[2:]
	positional := map[string]int{gateway.CriterionDatabase: 1, gateway.CriterionPrometheus: 2, gateway.CriterionHTTP: 1}
	n, ok := positional[c.Kind]
	if !ok {
		return c, d.Errf("criterion %s: kind %q: want %s", c.Name, c.Kind, gateway.CriterionKinds)
	}
	if len(rest) < n {
		return c, d.Errf("criterion %s: too few values: %s", c.Name, usage)
	}
	switch c.Kind {
	case gateway.CriterionDatabase:
		c.Database = rest[0]
	case gateway.CriterionPrometheus:
		c.URL, c.Query = rest[0], rest[1]
	case gateway.CriterionHTTP:
		c.URL = rest[0]
	}
	rest = rest[n:]
	given := map[string]bool{}
	for len(rest) > 0 {
		key := rest[0]
		if len(rest) < 2 {
			return c, d.Errf("criterion %s: %s needs a value", c.Name, key)
		}
		val := rest[1]
		rest = rest[2:]
		if given[key] {
			return c, d.Errf("criterion %s: %s given twice", c.Name, key)
		}
		given[key] = true
		var err error
		switch {
		case key == "above" && c.Kind == gateway.CriterionDatabase:
			if !strings.HasSuffix(val, "%") {
				return c, d.Errf("criterion %s: above %q: want a percentage of the connections, like 90%%", c.Name, val)
			}
			c.Above, err = gateway.ParsePercent(val)
		case key == "above" && c.Kind == gateway.CriterionPrometheus:
			c.Above, err = strconv.ParseFloat(val, 64)
		case key == "status" && c.Kind == gateway.CriterionHTTP:
			c.Status, err = strconv.Atoi(val)
		case key == "within" && c.Kind == gateway.CriterionHTTP:
			c.Within, err = criterionDuration(val)
		case key == "for":
			c.For, err = criterionDuration(val)
		case key == "window":
			c.Window, err = criterionDuration(val)
		case key == "interval":
			c.Interval, err = criterionDuration(val)
		default:
			return c, d.Errf("criterion %s: unknown setting %q for a %s criterion; %s, then for, window, interval", c.Name, key, c.Kind, usage)
		}
		if err != nil {
			return c, d.Errf("criterion %s: %s %q: %v", c.Name, key, val, err)
		}
	}
	if c.Kind != gateway.CriterionHTTP && !given["above"] {
		return c, d.Errf("criterion %s: missing 'above THRESHOLD'", c.Name)
	}
	if c.Kind == gateway.CriterionHTTP && !given["status"] {
		return c, d.Errf("criterion %s: missing 'status CODE'", c.Name)
	}
	if err := c.Validate("criterion " + c.Name); err != nil {
		return c, d.Errf("%v", err)
	}
	if d.NextBlock(d.Nesting()) {
		return c, d.Errf("criterion %s takes no block", c.Name)
	}
	return c, nil
}

func criterionDuration(s string) (gateway.Duration, error) {
	v, err := caddy.ParseDuration(s)
	if err != nil || v <= 0 {
		return 0, errors.New("want a positive duration like 500ms, 10s or 1m")
	}
	return gateway.Duration(v), nil
}

// parseDatabase reads `database NAME DSN [{ migrations DIR }]` of the
// switchback global option. The DSN is checked at provisioning, where
// placeholders are read; here only its shape, and no message repeats it
// unredacted. The migrations directory lets the gateway read the phases of
// what is applied and roll migrations down (package databases).
func parseDatabase(d *caddyfile.Dispenser, app *App) error {
	args := d.RemainingArgs()
	if len(args) != 2 {
		return d.Errf("database: want 'database NAME DSN' or 'database NAME DSN { migrations DIR }', e.g. 'database main {env.MAIN_DB}', got %d values", len(args))
	}
	name := args[0]
	if !gateway.ValidName(name) {
		return d.Errf("database %q: %s", name, gateway.NameRule)
	}
	if _, dup := app.Databases[name]; dup {
		return d.Errf("database %s given twice", name)
	}
	if app.Databases == nil {
		app.Databases = map[string]string{}
	}
	app.Databases[name] = args[1]
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		switch d.Val() {
		case "migrations":
			if _, dup := app.DatabaseMigrations[name]; dup {
				return d.Errf("database %s: migrations given twice", name)
			}
			v, err := oneArg(d)
			if err != nil {
				return err
			}
			if app.DatabaseMigrations == nil {
				app.DatabaseMigrations = map[string]string{}
			}
			app.DatabaseMigrations[name] = v
		default:
			return d.Errf("database %s: unknown setting %q; accepted: migrations DIR", name, d.Val())
		}
	}
	return nil
}
