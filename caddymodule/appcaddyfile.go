package caddymodule

import (
	"net"
	"strings"

	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
)

func init() {
	httpcaddyfile.RegisterGlobalOption("switchback", parseGlobalOption)
}

// parseGlobalOption configures the switchback app. Syntax:
//
//	switchback {
//		store embedded [<data_dir> [<client_addr>]]   # the default
//		store etcd <endpoint...> {                    # an external cluster
//			prefix     /switchback
//			username   <user>
//			password   <password>
//			tls        <ca_file> [<cert_file> <key_file>]
//			server_name <name>
//		}
//		prefix       /switchback                      # also for embedded
//		admin        127.0.0.1:9180 | off
//		admin_tokens <file>                           # NAME ROLE TOKEN_SHA256 lines
//		admin_hosts  <host...>                        # extra Host values the admin API accepts
//		ofrep        127.0.0.1:8016                   # OpenFeature (OFREP) flag evaluation; off by default
//		instance     <name>                           # default: hostname:admin_port
//		state_dir    <dir>                            # last-known-good documents
//		on_damaged_data fail | serve_last_known_good  # embedded store only; default fail
//		database <name> <dsn>                         # for 'criterion ... database <name>'; repeatable
//		fleet on | off                                # judge by every instance's windows; default on
//		drill {                                       # the elected instance drills staging deployments
//			every    720h                             # per deployment and pattern; default 720h
//			patterns flip flag config                 # the default
//			traffic  <deployment> <url>               # where clients reach it; repeatable
//			token    <token>                          # the admin API's, when admin_tokens is set
//		}
//	}
//
// on_damaged_data decides what a gateway does when the embedded etcd's data
// directory is damaged (a cut write-ahead log, a corrupt database file): by
// default it refuses to start, with an error naming the file, because a
// gateway is never quietly run on data it cannot trust. With
// serve_last_known_good it serves each deployment's last-known-good
// document from state_dir instead, read-only: no store, no admin API, no
// guard or rollouts, until the data is restored and the gateway restarted.
// A deployment with no last-known-good file still fails the start. A data
// directory in use by another process always fails the start.
func parseGlobalOption(d *caddyfile.Dispenser, existing any) (any, error) {
	app := new(App)
	d.Next() // option name
	if existing != nil {
		// Caddy hands a repeated global option its earlier value; replacing
		// it would silently drop the first block's settings.
		return nil, d.Errf("switchback global option given twice: put all its settings in one block")
	}
	if d.NextArg() {
		return nil, d.Errf("switchback takes a block, not %q", d.Val())
	}
	given := settings{}
	for d.NextBlock(0) {
		if d.Val() == "drill" {
			if app.Drill != nil {
				return nil, d.Errf("drill given twice: put all its settings in one block")
			}
			sched, err := parseDrillSchedule(d)
			if err != nil {
				return nil, err
			}
			app.Drill = sched
			continue
		}
		if d.Val() == "database" {
			if err := parseDatabase(d, app); err != nil {
				return nil, err
			}
			continue
		}
		if err := given.once(d); err != nil {
			return nil, err
		}
		switch d.Val() {
		case "store":
			var prefix string
			if app.Store != nil {
				prefix = app.Store.Prefix // a 'prefix' line came first
			}
			sc, err := parseStore(d)
			if err != nil {
				return nil, err
			}
			app.Store = sc
			switch {
			case sc.Prefix == "":
				sc.Prefix = prefix
			case prefix != "":
				return nil, d.Errf("prefix given twice (also in the store block): give it once")
			}
		case "prefix":
			v, err := oneArg(d)
			if err != nil {
				return nil, err
			}
			if err := checkPrefix(d, v); err != nil {
				return nil, err
			}
			if app.Store == nil {
				app.Store = &StoreConfig{}
			}
			if app.Store.Prefix != "" {
				return nil, d.Errf("prefix given twice (also in the store block): give it once")
			}
			app.Store.Prefix = v
		case "admin":
			v, err := oneArg(d)
			if err != nil {
				return nil, err
			}
			app.Admin = v
		case "admin_tokens":
			v, err := oneArg(d)
			if err != nil {
				return nil, err
			}
			app.AdminTokens = v
		case "admin_hosts":
			app.AdminHosts = d.RemainingArgs()
			if len(app.AdminHosts) == 0 {
				return nil, d.ArgErr()
			}
		case "ofrep":
			v, err := oneArg(d)
			if err != nil {
				return nil, err
			}
			app.OFREP = v
		case "instance":
			v, err := oneArg(d)
			if err != nil {
				return nil, err
			}
			app.Instance = v
		case "state_dir":
			v, err := oneArg(d)
			if err != nil {
				return nil, err
			}
			app.StateDir = v
		case "fleet":
			v, err := oneArg(d)
			if err != nil {
				return nil, err
			}
			if v != "on" && v != fleetOff {
				return nil, d.Errf("fleet %q: want on or off", v)
			}
			app.Fleet = v
		case "on_damaged_data":
			v, err := oneArg(d)
			if err != nil {
				return nil, err
			}
			if v != onDamagedFail && v != onDamagedServeLK {
				return nil, d.Errf("on_damaged_data %q: want %s or %s", v, onDamagedFail, onDamagedServeLK)
			}
			app.OnDamagedData = v
		default:
			return nil, d.Errf("unknown switchback option %q; accepted: store, prefix, admin, admin_tokens, admin_hosts, ofrep, instance, state_dir, on_damaged_data, database, fleet, drill", d.Val())
		}
	}
	return httpcaddyfile.App{Name: "switchback", Value: caddyconfig.JSON(app, nil)}, nil
}

func oneArg(d *caddyfile.Dispenser) (string, error) {
	name := d.Val()
	if !d.NextArg() {
		return "", d.Errf("%s needs a value", name)
	}
	v := d.Val()
	if d.NextArg() {
		return "", d.Errf("%s takes one value, got also %q", name, d.Val())
	}
	return v, nil
}

func parseStore(d *caddyfile.Dispenser) (*StoreConfig, error) {
	if !d.NextArg() {
		return nil, d.Errf("store needs a kind: 'store embedded [DATA_DIR [ADDR]]' or 'store etcd ENDPOINT...'")
	}
	sc := &StoreConfig{Kind: d.Val()}
	args := d.RemainingArgs()
	switch sc.Kind {
	case "embedded":
		if len(args) > 2 {
			return nil, d.Errf("store embedded takes at most a data dir and a client address, got %q", args)
		}
		if len(args) > 0 {
			sc.DataDir = args[0]
		}
		if len(args) > 1 {
			// Checked here so the mistake is reported with its line, not
			// when the store starts.
			if _, _, err := net.SplitHostPort(args[1]); err != nil {
				return nil, d.Errf("store embedded client address %q: want host:port, like 127.0.0.1:2379", args[1])
			}
			sc.ClientAddr = args[1]
		}
	case "etcd":
		if len(args) == 0 {
			return nil, d.Errf("store etcd needs at least one endpoint, e.g. 'store etcd 10.0.0.5:2379'")
		}
		sc.Endpoints = args
	default:
		return nil, d.Errf("store %q: want embedded or etcd", sc.Kind)
	}
	given := settings{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		if sc.Kind != "etcd" {
			return nil, d.Errf("store %s takes no block; %q is for 'store etcd'", sc.Kind, d.Val())
		}
		if err := given.once(d); err != nil {
			return nil, err
		}
		switch d.Val() {
		case "prefix":
			v, err := oneArg(d)
			if err != nil {
				return nil, err
			}
			if err := checkPrefix(d, v); err != nil {
				return nil, err
			}
			sc.Prefix = v
		case "username":
			v, err := oneArg(d)
			if err != nil {
				return nil, err
			}
			sc.Username = v
		case "password":
			v, err := oneArg(d)
			if err != nil {
				return nil, err
			}
			sc.Password = v
		case "tls":
			args := d.RemainingArgs()
			if len(args) != 1 && len(args) != 3 {
				return nil, d.Errf("tls takes a CA file, optionally followed by a client cert and key file, got %q", args)
			}
			if sc.TLS == nil {
				sc.TLS = &StoreTLS{}
			}
			sc.TLS.CA = args[0]
			if len(args) == 3 {
				sc.TLS.Cert, sc.TLS.Key = args[1], args[2]
			}
		case "server_name":
			v, err := oneArg(d)
			if err != nil {
				return nil, err
			}
			if sc.TLS == nil {
				sc.TLS = &StoreTLS{}
			}
			sc.TLS.ServerName = v
		default:
			return nil, d.Errf("unknown store etcd setting %q; accepted: prefix, username, password, tls, server_name", d.Val())
		}
	}
	return sc, nil
}

// checkPrefix refuses a key prefix the store would refuse when it starts,
// so the mistake is reported with its line.
func checkPrefix(d *caddyfile.Dispenser, v string) error {
	if v == "" || v[0] != '/' || strings.ContainsAny(v, " \t\r\n") {
		return d.Errf("prefix %q: want a key prefix starting with / and without spaces, e.g. /switchback", v)
	}
	return nil
}
