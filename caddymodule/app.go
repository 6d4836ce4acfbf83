package caddymodule

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/a8e2c47e/switchback/configstore"
	"github.com/a8e2c47e/switchback/gateway"
)

func init() {
	caddy.RegisterModule(new(App))
}

// embeddedStores keeps an embedded etcd alive across config reloads: the new
// config's app provisions while the old one still runs, and both must use
// the same server (same data, same port).
var embeddedStores = caddy.NewUsagePool()

type embeddedEntry struct{ *configstore.Embedded }

func (e embeddedEntry) Destruct() error { return e.Close() }

// App is the switchback Caddy app: the versioned store every gateway
// instance watches, and the admin API. Handlers of the switchback directive
// bootstrap their deployment through it when it is configured; without it
// they serve the Caddyfile's document alone.
type App struct {
	// Store is where versions live; default: embedded etcd.
	Store *StoreConfig `json:"store,omitempty"`
	// Admin is the admin API listener; default 127.0.0.1:9180, "off" disables it.
	Admin string `json:"admin,omitempty"`
	// AdminTokens is a file of "NAME ROLE TOKEN_SHA256" lines; without it
	// only loopback clients are served.
	AdminTokens string `json:"admin_tokens,omitempty"`
	// AdminHosts are Host header values the admin API accepts besides
	// loopback names (DNS-rebinding protection).
	AdminHosts []string `json:"admin_hosts,omitempty"`
	// Instance names this gateway in history and in the applied-version
	// report; default: hostname and admin port.
	Instance string `json:"instance,omitempty"`
	// StateDir holds the last-known-good document of each deployment, used
	// when the store is unreachable at start; default under Caddy's data dir.
	StateDir string `json:"state_dir,omitempty"`

	ctx      caddy.Context
	logger   *zap.Logger
	embedKey string
	client   *clientv3.Client
	store    *configstore.Store
	metrics  *appMetrics

	healthy atomic.Bool
	now     func() time.Time

	// guardsMu protects guards and lastGuardWrite.
	guardsMu       sync.Mutex
	guards         map[string]*guardState
	lastGuardWrite map[string]time.Time

	// mu protects warned: deployments whose Caddyfile/etcd mismatch was logged.
	mu     sync.Mutex
	warned map[string]bool

	stop    context.CancelFunc
	watched chan struct{} // closed when the watch goroutine has returned
	judged  chan struct{} // closed when the guard goroutine has returned
	rolled  chan struct{} // closed when the rollout driver has returned
	admin   *http.Server
	adminLn net.Listener
	// cancelStreams ends the admin API's open requests (events streams).
	cancelStreams context.CancelFunc
}

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

// CaddyModule returns the Caddy module information.
func (*App) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "switchback",
		New: func() caddy.Module { return new(App) },
	}
}

const (
	defaultAdmin      = "127.0.0.1:9180"
	defaultClientAddr = "127.0.0.1:2379"
	// bootstrapTimeout bounds how long a starting gateway waits for the
	// store before it falls back to its last-known-good document.
	bootstrapTimeout = 3 * time.Second
)

// Provision connects to the store (starting the embedded etcd if that is
// the store), so that handlers provisioned after it can bootstrap from it.
func (a *App) Provision(ctx caddy.Context) error {
	a.ctx = ctx
	a.logger = ctx.Logger()
	a.warned = make(map[string]bool)
	a.guards = make(map[string]*guardState)
	a.lastGuardWrite = make(map[string]time.Time)
	a.now = time.Now
	if a.Store == nil {
		a.Store = &StoreConfig{}
	}
	if a.Store.Kind == "" {
		a.Store.Kind = "embedded"
	}
	if a.Admin == "" {
		a.Admin = defaultAdmin
	}
	if a.StateDir == "" {
		a.StateDir = filepath.Join(caddy.AppDataDir(), "switchback", "state")
	}
	if a.Instance == "" {
		host, _ := os.Hostname()
		a.Instance = host
		if _, port, err := net.SplitHostPort(a.Admin); err == nil {
			a.Instance += ":" + port
		}
	}
	a.metrics = newAppMetrics(ctx.GetMetricsRegistry())
	if err := ctx.GetMetricsRegistry().Register(trafficCollector{}); err != nil {
		return fmt.Errorf("switchback: metrics: %w", err)
	}

	var err error
	switch a.Store.Kind {
	case "embedded":
		err = a.startEmbedded()
	case "etcd":
		err = a.connectExternal()
	default:
		return fmt.Errorf("switchback: store %q: want embedded or etcd", a.Store.Kind)
	}
	if err != nil {
		return fmt.Errorf("switchback: store: %w", err)
	}
	var opts []configstore.Option
	if a.Store.Prefix != "" {
		opts = append(opts, configstore.WithPrefix(a.Store.Prefix))
	}
	a.store, err = configstore.New(a.client, opts...)
	if err != nil {
		return fmt.Errorf("switchback: store: %w", err)
	}
	a.healthy.Store(true)
	return nil
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
	if host, _, err := net.SplitHostPort(addr); err != nil || !isLoopback(host) {
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

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
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

// bootstrap returns the document a handler should serve for its deployment
// at start: etcd's current version when there is one; the Caddyfile's,
// written as version 1, when there is none; the last-known-good file when
// etcd cannot be reached; and the Caddyfile's as a last resort.
func (a *App) bootstrap(cfg gateway.Config) (gateway.Config, error) {
	ctx, cancel := context.WithTimeout(a.ctx, bootstrapTimeout)
	defer cancel()
	doc, created, err := a.store.Bootstrap(ctx, cfg, configstore.Meta{
		Author: a.Instance,
		Source: configstore.SourceBootstrap,
		Reason: "first start: the Caddyfile's document",
	})
	switch {
	case err == nil:
		if !created && !doc.Config.Equal(cfg) {
			a.warnOnce(cfg.Name, "the Caddyfile differs from the store; serving the store's version (etcd is the truth after bootstrap)",
				zap.Uint64("version", doc.Meta.Version), zap.Any("differences", configstore.Diff(cfg, doc.Config)))
		}
		return doc.Config, nil
	case errors.Is(err, configstore.ErrUnavailable):
		a.healthy.Store(false)
		if lkg, lerr := a.readLastKnownGood(cfg.Name); lerr == nil {
			a.logger.Warn("store unreachable at start; serving the last-known-good version",
				zap.String("deployment", cfg.Name), zap.Uint64("version", lkg.Meta.Version), zap.Error(err))
			return lkg.Config, nil
		} else if !errors.Is(lerr, os.ErrNotExist) {
			a.logger.Error("reading last-known-good", zap.String("deployment", cfg.Name), zap.Error(lerr))
		}
		a.logger.Warn("store unreachable at start and no last-known-good file; serving the Caddyfile's document until the store is back",
			zap.String("deployment", cfg.Name), zap.Error(err))
		return cfg, nil
	default:
		return gateway.Config{}, err
	}
}

func (a *App) warnOnce(name, msg string, fields ...zap.Field) {
	a.mu.Lock()
	seen := a.warned[name]
	a.warned[name] = true
	a.mu.Unlock()
	if !seen {
		a.logger.Warn(msg, append([]zap.Field{zap.String("deployment", name)}, fields...)...)
	}
}

// Start watches the store and applies every new version, and serves the
// admin API.
func (a *App) Start() error {
	if err := a.startAdmin(); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	a.stop = cancel
	a.watched = make(chan struct{})
	a.judged = make(chan struct{})
	a.rolled = make(chan struct{})
	go func() {
		defer close(a.watched)
		_ = a.store.Watch(ctx, a.apply, a.setHealth)
	}()
	go func() {
		defer close(a.judged)
		a.runGuards(ctx)
	}()
	go func() {
		defer close(a.rolled)
		a.runRollouts(ctx)
	}()
	return nil
}

// Stop ends the watch, the guard, the rollout driver and the admin API, and
// waits for them.
func (a *App) Stop() error {
	if a.stop != nil {
		a.stop()
		<-a.watched
		<-a.judged
		<-a.rolled
	}
	return a.stopAdmin()
}

// Cleanup releases the store; the embedded etcd stops when the last config
// using it goes away. Safe after a partial Provision.
func (a *App) Cleanup() error {
	var err error
	if a.store != nil {
		err = a.store.Close()
	}
	if a.client != nil {
		err = errors.Join(err, a.client.Close())
	}
	if a.embedKey != "" {
		_, _ = embeddedStores.Delete(a.embedKey)
	}
	return err
}

// apply makes a version from the store live on this instance, then records
// it as the last-known-good and reports it. The recording also happens for
// the version the handlers bootstrapped with, which the watch delivers first.
func (a *App) apply(doc configstore.Document) {
	name := doc.Config.Name
	dep, ok := LookupDeployment(name)
	if !ok {
		return // no handler here serves it
	}
	if doc.Meta.Source == configstore.SourceGuard {
		a.noteGuardWrite(name, doc.Meta.Time)
	}
	_, err := dep.Apply(doc.Config)
	switch {
	case errors.Is(err, gateway.ErrStale):
		// Already live (the bootstrapped version, or our own write applied
		// before the watch brought it back) or older than what is live;
		// record it only if it is exactly what is live.
		if cur := dep.Snapshot(); cur == nil || cur.Version() != doc.Meta.Version {
			return
		}
	case err != nil:
		a.metrics.applyErrors.WithLabelValues(name).Inc()
		a.logger.Error("applying version", zap.String("deployment", name), zap.Uint64("version", doc.Meta.Version), zap.Error(err))
		return
	default:
		a.metrics.switches.WithLabelValues(name).Inc()
		a.logger.Info("applied version", zap.String("deployment", name), zap.Uint64("version", doc.Meta.Version),
			zap.String("source", string(doc.Meta.Source)), zap.String("author", doc.Meta.Author), zap.String("summary", doc.Meta.Summary))
	}
	a.metrics.appliedVersion.WithLabelValues(name).Set(float64(doc.Meta.Version))
	if err := a.writeLastKnownGood(doc); err != nil {
		a.logger.Error("writing last-known-good", zap.String("deployment", name), zap.Error(err))
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := a.store.ReportApplied(ctx, a.Instance, name, doc.Meta.Version); err != nil {
		a.logger.Debug("reporting applied version", zap.Error(err))
	}
}

func (a *App) setHealth(healthy bool, err error) {
	was := a.healthy.Swap(healthy)
	if healthy {
		a.metrics.storeHealthy.Set(1)
		if !was {
			a.logger.Info("store reachable again")
		}
		return
	}
	a.metrics.storeHealthy.Set(0)
	if was {
		a.logger.Warn("store unreachable; serving the last applied versions", zap.Error(err))
	}
}

// lastKnownGoodPath is the file of one deployment's last applied document.
func (a *App) lastKnownGoodPath(name string) string {
	return filepath.Join(a.StateDir, name+".json")
}

// writeLastKnownGood replaces the file atomically (write, then rename), so a
// crash mid-write leaves the previous good file.
func (a *App) writeLastKnownGood(doc configstore.Document) error {
	if err := os.MkdirAll(a.StateDir, 0o700); err != nil {
		return err
	}
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return err
	}
	path := a.lastKnownGoodPath(doc.Config.Name)
	tmp, err := os.CreateTemp(a.StateDir, ".lkg-*")
	if err != nil {
		return err
	}
	// Synced before the rename, so a crash leaves the old file or the new
	// one, never a torn one.
	_, err = tmp.Write(b)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return os.Rename(tmp.Name(), path)
}

func (a *App) readLastKnownGood(name string) (configstore.Document, error) {
	var doc configstore.Document
	b, err := os.ReadFile(a.lastKnownGoodPath(name))
	if err != nil {
		return doc, err
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return doc, fmt.Errorf("%s: %w", a.lastKnownGoodPath(name), err)
	}
	if doc.Config.Name != name {
		return doc, fmt.Errorf("%s: holds deployment %q", a.lastKnownGoodPath(name), doc.Config.Name)
	}
	return doc, nil
}

type appMetrics struct {
	appliedVersion *prometheus.GaugeVec
	switches       *prometheus.CounterVec
	applyErrors    *prometheus.CounterVec
	storeHealthy   prometheus.Gauge
	breaching      *prometheus.GaugeVec
	fallbacks      *prometheus.CounterVec
	events         *prometheus.CounterVec
}

func newAppMetrics(reg prometheus.Registerer) *appMetrics {
	f := promauto.With(reg)
	m := &appMetrics{
		appliedVersion: f.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "switchback", Name: "applied_version",
			Help: "Version of each deployment's document live on this instance.",
		}, []string{"deployment"}),
		switches: f.NewCounterVec(prometheus.CounterOpts{
			Namespace: "switchback", Name: "switches_total",
			Help: "Versions applied from the store, per deployment.",
		}, []string{"deployment"}),
		applyErrors: f.NewCounterVec(prometheus.CounterOpts{
			Namespace: "switchback", Name: "apply_errors_total",
			Help: "Versions from the store this instance could not apply.",
		}, []string{"deployment"}),
		storeHealthy: f.NewGauge(prometheus.GaugeOpts{
			Namespace: "switchback", Name: "store_healthy",
			Help: "1 when the store is reachable, 0 while serving the last applied versions without it.",
		}),
	}
	m.breaching = f.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: "switchback", Name: "guard_breaching",
		Help: "1 while a pool or flag cohort is over its guard's ceilings (and baseline).",
	}, []string{"deployment", "kind", "name"})
	m.fallbacks = f.NewCounterVec(prometheus.CounterOpts{
		Namespace: "switchback", Name: "guard_fallbacks_total",
		Help: "Fallbacks this instance wrote: pool traffic moved (fallback) or flag set to 0% (flag_off).",
	}, []string{"deployment", "kind"})
	m.events = f.NewCounterVec(prometheus.CounterOpts{
		Namespace: "switchback", Name: "events_total",
		Help: "Events this instance recorded, by kind.",
	}, []string{"deployment", "kind"})
	m.storeHealthy.Set(1)
	return m
}

// Interface guards
var (
	_ caddy.App          = (*App)(nil)
	_ caddy.Provisioner  = (*App)(nil)
	_ caddy.CleanerUpper = (*App)(nil)
)
