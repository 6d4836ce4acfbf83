package caddymodule

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"

	"github.com/a8e2c47e/switchback/databases"
	"github.com/a8e2c47e/switchback/gateway"
)

// DatabaseRegistry returns the registry of the databases named in the
// global option, for the control plane and the admin API; nil before
// Provision.
func (a *App) DatabaseRegistry() *databases.Registry { return a.dbs }

// provisionDatabases reads the database lines' placeholders and builds
// the registry, which connects to nothing yet: a database that is down
// when the gateway starts must not stop it. It returns the lines read,
// for the criteria.
func (a *App) provisionDatabases() ([]databases.Config, error) {
	for _, name := range slices.Sorted(maps.Keys(a.DatabaseMigrations)) {
		if _, ok := a.Databases[name]; !ok {
			return nil, fmt.Errorf("switchback: %w", &gateway.FieldError{Field: "database_migrations", Value: strconv.Quote(name),
				Want: "no database of that name; accepted: " + acceptedDatabases(a.Databases)})
		}
	}
	repl := caddy.NewReplacer()
	var configs []databases.Config
	for _, name := range slices.Sorted(maps.Keys(a.Databases)) {
		c, err := a.databaseConfig(repl, name)
		if err != nil {
			return nil, fmt.Errorf("switchback: %w", err)
		}
		configs = append(configs, c)
	}
	reg, err := databases.New(configs)
	if err != nil {
		return nil, fmt.Errorf("switchback: %w", err)
	}
	a.dbs = reg
	return configs, nil
}

// databaseConfig reads the placeholders of one database line, as the
// gateway does when it starts.
func (a *App) databaseConfig(repl *caddy.Replacer, name string) (databases.Config, error) {
	raw := a.Databases[name]
	c := databases.Config{Name: name, DSN: repl.ReplaceAll(raw, ""), Migrations: repl.ReplaceAll(a.DatabaseMigrations[name], "")}
	if strings.TrimSpace(c.DSN) == "" {
		// The placeholder is shown, not a value: it holds no secret.
		return c, &gateway.FieldError{Field: "database " + name, Value: strconv.Quote(raw),
			Want: "the DSN is empty (an unset environment variable or an empty file?); accepted: sqlite:PATH, postgres://USER@HOST:PORT/DB or mysql://USER@HOST:PORT/DB"}
	}
	return c, nil
}

func acceptedDatabases(dbs map[string]string) string {
	if len(dbs) == 0 {
		return "none is configured; add 'database NAME DSN { migrations DIR }' to the switchback global option"
	}
	return strings.Join(slices.Sorted(maps.Keys(dbs)), ", ")
}

// ResolveDatabase finds database name in the Caddyfile at path, adapted
// with Caddy's caddyfile adapter and its placeholders ({env.X},
// {file.PATH}) read as the gateway reads them when it starts: the address
// and migrations directory `switchback migrate --database NAME` uses. An
// unknown name is a *gateway.FieldError on --database listing the
// configured ones.
func ResolveDatabase(path, name string) (dsn, dir string, err error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return "", "", &gateway.FieldError{Field: "--config", Value: strconv.Quote(path),
			Want: fmt.Sprintf("%v; accepted: the gateway's Caddyfile", unwrapPath(err))}
	}
	cfgJSON, _, err := caddyconfig.GetAdapter("caddyfile").Adapt(src, map[string]any{"filename": path})
	if err != nil {
		return "", "", fmt.Errorf("--config %q: %w", path, err)
	}
	var cfg struct {
		Apps map[string]json.RawMessage `json:"apps"`
	}
	if err := json.Unmarshal(cfgJSON, &cfg); err != nil {
		return "", "", fmt.Errorf("--config %q: read the adapted config: %w", path, err)
	}
	var app App
	if raw, ok := cfg.Apps["switchback"]; ok {
		if err := json.Unmarshal(raw, &app); err != nil {
			return "", "", fmt.Errorf("--config %q: read the switchback global option: %w", path, err)
		}
	}
	if _, ok := app.Databases[name]; !ok {
		return "", "", &gateway.FieldError{Field: "--database", Value: strconv.Quote(name),
			Want: fmt.Sprintf("no database of that name in %s; accepted: %s", path, acceptedDatabases(app.Databases))}
	}
	c, err := app.databaseConfig(caddy.NewReplacer(), name)
	if err != nil {
		return "", "", err
	}
	return c.DSN, c.Migrations, nil
}

// unwrapPath drops the path an *fs.PathError repeats.
func unwrapPath(err error) error {
	if u := errors.Unwrap(err); u != nil {
		return u
	}
	return err
}
