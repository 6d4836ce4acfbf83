package caddymodule

import (
	"fmt"
	"path/filepath"

	"github.com/caddyserver/caddy/v2"

	"github.com/a8e2c47e/switchback/configstore"
)

// embeddedStores keeps an embedded etcd alive across config reloads: the new
// config's app provisions while the old one still runs, and both must use
// the same server (same data, same port).
var embeddedStores = caddy.NewUsagePool()

type embeddedEntry struct{ *configstore.Embedded }

func (e embeddedEntry) Destruct() error { return e.Close() }

// StoreConfig selects the etcd the versions live in.
type StoreConfig struct {
	// Kind is "embedded" (default) or "etcd".
	Kind string `json:"kind,omitempty"`
	// DataDir of the embedded etcd; default under Caddy's data dir.
	DataDir string `json:"data_dir,omitempty"`
	// ClientAddr the embedded etcd listens on; default 127.0.0.1:2379.
	ClientAddr string `json:"client_addr,omitempty"`
	// Endpoints of an external etcd cluster.
	Endpoints []string `json:"endpoints,omitempty"`
	// Prefix of every key; default /switchback.
	Prefix   string `json:"prefix,omitempty"`
	Username string `json:"username,omitempty"`
	Password string `json:"password,omitempty"`
	// TLS for an external cluster.
	TLS *StoreTLS `json:"tls,omitempty"`
}

// StoreTLS holds client TLS files for an external etcd.
type StoreTLS struct {
	CA         string `json:"ca,omitempty"`
	Cert       string `json:"cert,omitempty"`
	Key        string `json:"key,omitempty"`
	ServerName string `json:"server_name,omitempty"`
}

// dialStore connects to the store a.Store describes. An embedded etcd is
// kept in embeddedStores, so a reload's new config shares the running
// server rather than start a second one on the same data.
func (a *App) dialStore() (*configstore.Store, error) {
	cfg := configstore.DialConfig{
		Prefix:    a.Store.Prefix,
		Endpoints: a.Store.Endpoints,
		Username:  a.Store.Username,
		Password:  a.Store.Password,
		Logger:    a.logger.Named("etcd"),
	}
	if t := a.Store.TLS; t != nil {
		cfg.TLS = &configstore.TLSFiles{CA: t.CA, Cert: t.Cert, Key: t.Key, ServerName: t.ServerName}
	}
	switch a.Store.Kind {
	case "etcd":
	case "embedded":
		dir := a.Store.DataDir
		if dir == "" {
			dir = filepath.Join(caddy.AppDataDir(), "switchback", "etcd")
		}
		addr := a.Store.ClientAddr
		if addr == "" {
			addr = configstore.DefaultClientAddr
		}
		if err := configstore.CheckEmbeddedAddr(addr); err != nil {
			return nil, fmt.Errorf("embedded etcd: %w", err)
		}
		a.embedKey = dir + "|" + addr
		val, _, err := embeddedStores.LoadOrNew(a.embedKey, func() (caddy.Destructor, error) {
			e, err := configstore.StartEmbedded(dir, addr)
			if err != nil {
				return nil, err
			}
			return embeddedEntry{e}, nil
		})
		if err != nil {
			a.embedKey = ""
			return nil, fmt.Errorf("embedded etcd (data %s, client %s): %w", dir, addr, err)
		}
		cfg.Embedded = val.(embeddedEntry).Embedded
	default:
		return nil, fmt.Errorf("store %q: want embedded or etcd", a.Store.Kind)
	}
	return configstore.Dial(cfg)
}
