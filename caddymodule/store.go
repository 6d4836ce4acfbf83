package caddymodule

import (
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/caddyserver/caddy/v2"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/a8e2c47e/switchback/admin"
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

func (a *App) startEmbedded() error {
	dir := a.Store.DataDir
	if dir == "" {
		dir = filepath.Join(caddy.AppDataDir(), "switchback", "etcd")
	}
	addr := a.Store.ClientAddr
	if addr == "" {
		addr = defaultClientAddr
	}
	// The embedded etcd has no TLS and no auth: reachable from elsewhere,
	// it would let anyone change routing around the admin API's tokens.
	if !admin.IsLoopback(addr) {
		return fmt.Errorf("embedded etcd client address %q: want a loopback address such as 127.0.0.1:2379 (it has no TLS or auth); for a shared store use 'store etcd' with a secured cluster", addr)
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
		return fmt.Errorf("embedded etcd (data %s, client %s): %w", dir, addr, err)
	}
	a.client, err = val.(embeddedEntry).Client()
	return err
}

func (a *App) connectExternal() error {
	if len(a.Store.Endpoints) == 0 {
		return errors.New("store etcd: list at least one endpoint, e.g. 'store etcd 10.0.0.5:2379'")
	}
	cfg := clientv3.Config{
		Endpoints:   a.Store.Endpoints,
		Username:    a.Store.Username,
		Password:    a.Store.Password,
		DialTimeout: 5 * time.Second,
		Logger:      a.logger.Named("etcd").WithOptions(zap.IncreaseLevel(zap.WarnLevel)),
	}
	if t := a.Store.TLS; t != nil {
		tlsCfg, err := loadStoreTLS(t)
		if err != nil {
			return err
		}
		cfg.TLS = tlsCfg
	}
	var err error
	a.client, err = clientv3.New(cfg)
	return err
}
