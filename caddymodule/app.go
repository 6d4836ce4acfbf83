package caddymodule

import (
	"context"
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
	"go.uber.org/zap"

	"github.com/a8e2c47e/switchback/configstore"
	"github.com/a8e2c47e/switchback/control"
	"github.com/a8e2c47e/switchback/databases"
	"github.com/a8e2c47e/switchback/gateway"
)

func init() {
	caddy.RegisterModule(new(App))
}

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
	// OFREP is the listener of the OpenFeature Remote Evaluation Protocol
	// (package ofrep); "" (the default) serves none. Flags tokens come from
	// AdminTokens; without it only loopback clients are served.
	OFREP string `json:"ofrep,omitempty"`
	// AdminHosts are Host header values the admin API accepts besides
	// loopback names (DNS-rebinding protection).
	AdminHosts []string `json:"admin_hosts,omitempty"`
	// Instance names this gateway in history and in the applied-version
	// report; default: hostname and admin port.
	Instance string `json:"instance,omitempty"`
	// StateDir holds the last-known-good document of each deployment, used
	// when the store is unreachable at start; default under Caddy's data dir.
	StateDir string `json:"state_dir,omitempty"`
	// OnDamagedData says what to do when the embedded etcd's data
	// directory is damaged: "fail" (the default) refuses to start;
	// "serve_last_known_good" serves each deployment's last-known-good
	// document, with no store, no admin API and no guard, until the data
	// is repaired and the gateway restarted. A deployment without a
	// last-known-good file still fails the start.
	OnDamagedData string `json:"on_damaged_data,omitempty"`
	// Databases are the gateway's databases by name (`database NAME
	// DSN`): for criteria that count connections, for the registry the
	// release work reads versions from and rolls down with
	// (DatabaseRegistry), and for `switchback migrate --database NAME`.
	// Placeholders like {env.MAIN_DB} are read at provisioning; a DSN stays
	// in the gateway's own config, never in the store or an API answer.
	Databases map[string]string `json:"databases,omitempty"`
	// DatabaseMigrations are the migrations directories of Databases, by
	// name (`database NAME DSN { migrations DIR }`): what lets the gateway
	// read the phases applied and roll migrations down. Placeholders are
	// read at provisioning.
	DatabaseMigrations map[string]string `json:"database_migrations,omitempty"`
	// Fleet is "on" (the default): each instance publishes its windows'
	// summary every second and judges by the fleet's merged windows; or
	// "off": each instance judges by its own traffic alone.
	Fleet string `json:"fleet,omitempty"`
	// AdminURL is where the other instances reach this one's admin API
	// (to merge the requests each recorded for a release); default:
	// http:// and the admin listener's address, or this host's first
	// global address and the port when it listens on every address.
	AdminURL string `json:"admin_url,omitempty"`
	// AffectedCapacity is how many requests this instance records per
	// release before dropping the oldest (and counting them); default
	// 100,000.
	AffectedCapacity int `json:"affected_capacity,omitempty"`
	// Drill, when set, makes the elected instance drill the deployments
	// marked staging on a schedule, through this instance's admin API.
	Drill *DrillSchedule `json:"drill,omitempty"`

	ctx      caddy.Context
	logger   *zap.Logger
	embedKey string
	store    *configstore.Store
	metrics  *appMetrics
	// damaged is why the store is off when the embedded etcd's data is
	// damaged and OnDamagedData allows serving last-known-good documents.
	damaged error

	healthy atomic.Bool
	now     func() time.Time

	// control writes what the guard and the rollout driver decide.
	control *control.Control
	// crit probes the external criteria.
	crit criteriaGlue
	// dbs is the registry of the databases named in the global option.
	dbs *databases.Registry
	// fleet is the other instances' window summaries, as last read.
	fleet atomic.Pointer[fleetView]

	// guardsMu protects guards.
	guardsMu sync.Mutex
	guards   map[string]*guardState

	// mu protects warned: deployments whose Caddyfile/etcd mismatch was
	// logged, and retained: each deployment's rollback targets as of the
	// version last applied (state beside the document, for the guard).
	mu       sync.Mutex
	warned   map[string]bool
	retained map[string]map[string]time.Time

	// recorder writes last-known-good files and applied-version reports;
	// it runs from Start until Stop, after every loop that applies.
	recorder     *recorder
	stopRecorder context.CancelFunc
	recorded     chan struct{} // closed when the recorder has returned

	stop    context.CancelFunc
	watched chan struct{} // closed when the watch goroutine has returned
	judged  chan struct{} // closed when the guard goroutine has returned
	rolled  chan struct{} // closed when the rollout driver has returned
	// affecting is closed when the loop keeping releases' recording in
	// step has returned.
	affecting chan struct{}
	// adminURL is AdminURL or, by default, the listener's; "" with no
	// admin API.
	adminURL string
	drilled  chan struct{} // closed when the drill schedule has returned; nil without one
	// drillAttempts is when the schedule last ran each "deployment
	// pattern"; only its loop touches it.
	drillAttempts map[string]time.Time
	// drillToken is Drill.Token with its placeholders replaced.
	drillToken string
	admin      *http.Server
	adminLn    net.Listener
	// cancelStreams ends the admin API's open requests (events streams).
	cancelStreams context.CancelFunc
	ofrep         *ofrepListener
}

// CaddyModule returns the Caddy module information.
func (*App) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "switchback",
		New: func() caddy.Module { return new(App) },
	}
}

const (
	defaultAdmin = "127.0.0.1:9180"

	onDamagedFail    = "fail"
	onDamagedServeLK = "serve_last_known_good"
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
	a.retained = make(map[string]map[string]time.Time)
	a.guards = make(map[string]*guardState)
	a.now = time.Now
	a.recorder = newRecorder(a.record)
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
	switch {
	case a.OnDamagedData == "":
		a.OnDamagedData = onDamagedFail
	case a.OnDamagedData != onDamagedFail && a.OnDamagedData != onDamagedServeLK:
		return fmt.Errorf("switchback: on_damaged_data %q: want %s or %s", a.OnDamagedData, onDamagedFail, onDamagedServeLK)
	case a.Store.Kind != "embedded":
		return fmt.Errorf("switchback: on_damaged_data %q: applies to the embedded store only, not to store %s", a.OnDamagedData, a.Store.Kind)
	}
	if a.AdminURL != "" {
		if err := checkAdminURL(a.AdminURL); err != nil {
			return fmt.Errorf("switchback: %w", err)
		}
	}
	if a.AffectedCapacity < 0 {
		return fmt.Errorf("switchback: affected_capacity %d: want 1 or more, or 0 for the default", a.AffectedCapacity)
	}
	if a.Drill != nil {
		if a.Admin == "off" {
			return fmt.Errorf("switchback: drill: scheduled drills run through this instance's admin API, and admin is off")
		}
		if a.AdminTokens != "" && a.Drill.Token == "" {
			return fmt.Errorf("switchback: drill: the admin API has tokens (admin_tokens), so the drill block needs an operator's token")
		}
		a.drillToken = caddy.NewReplacer().ReplaceAll(a.Drill.Token, "")
	}
	a.metrics = newAppMetrics(ctx.GetMetricsRegistry())
	if err := ctx.GetMetricsRegistry().Register(trafficCollector{}); err != nil {
		return fmt.Errorf("switchback: metrics: %w", err)
	}
	a.removeStaleTemps()

	dbConfigs, err := a.provisionDatabases()
	if err != nil {
		return err
	}
	a.store, err = a.dialStore()
	switch {
	case errors.Is(err, configstore.ErrDataDamaged) && a.OnDamagedData == onDamagedServeLK:
		a.damaged = err
		a.metrics.storeHealthy.Set(0)
		a.logger.Error("store off: its data is damaged; serving last-known-good documents, no changes possible until the data is repaired and the gateway restarted",
			zap.String("state_dir", a.StateDir), zap.Error(err))
		return nil
	case errors.Is(err, configstore.ErrDataDamaged):
		return fmt.Errorf("switchback: store: %w (to serve the last-known-good documents in %s meanwhile, set 'on_damaged_data %s' in the switchback global option)", err, a.StateDir, onDamagedServeLK)
	case err != nil:
		return fmt.Errorf("switchback: store: %w", err)
	}
	a.healthy.Store(true)
	if err := ctx.GetMetricsRegistry().Register(newDrillCollector(a.store, a.now)); err != nil {
		return fmt.Errorf("switchback: metrics: %w", err)
	}
	if a.control, err = a.newControl(); err != nil {
		return err
	}
	return a.provisionCriteria(ctx, dbConfigs)
}

// Start watches the store and applies every new version, and serves the
// admin API. With the store off (damaged data) there is nothing to watch,
// and no admin API: every call of it would need the store; OFREP still
// answers from the last-known-good versions, so applications keep their
// flags.
func (a *App) Start() error {
	if a.damaged != nil {
		return a.startOFREP()
	}
	if err := a.startAdmin(); err != nil {
		return err
	}
	rctx, rcancel := context.WithCancel(context.Background())
	a.stopRecorder = rcancel
	a.recorded = make(chan struct{})
	go func() {
		defer close(a.recorded)
		a.recorder.run(rctx)
	}()
	if err := a.startOFREP(); err != nil {
		a.stopRecorder()
		<-a.recorded
		return errors.Join(err, a.stopAdmin())
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
	a.affecting = make(chan struct{})
	go func() {
		defer close(a.affecting)
		a.runAffected(ctx)
	}()
	if a.Drill != nil {
		a.drilled = make(chan struct{})
		go func() {
			defer close(a.drilled)
			a.runDrills(ctx)
		}()
	}
	return nil
}

// Stop ends the watch, the guard, the rollout driver and the admin API, and
// waits for them; then the recorder, once it has recorded what they applied.
func (a *App) Stop() error {
	if a.stop != nil {
		a.stop()
		<-a.watched
		<-a.judged
		<-a.rolled
		<-a.affecting
		if a.drilled != nil {
			<-a.drilled
		}
	}
	err := errors.Join(a.stopAdmin(), a.stopOFREP())
	if a.stopRecorder != nil {
		a.stopRecorder()
		<-a.recorded
	}
	return err
}

// Cleanup releases the store; the embedded etcd stops when the last config
// using it goes away. Safe after a partial Provision.
func (a *App) Cleanup() error {
	err := errors.Join(a.closeDatabases(), a.dbs.Close())
	if a.store != nil {
		err = errors.Join(err, a.store.Close())
	}
	if a.embedKey != "" {
		_, _ = embeddedStores.Delete(a.embedKey)
	}
	return err
}

// apply makes a version from the store live on this instance, then hands it
// to the recorder, which writes it as the last-known-good and reports it.
// The recording also happens for the version the handlers bootstrapped
// with, which the watch delivers first.
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
	a.mu.Lock()
	a.retained[name] = doc.Retained
	a.mu.Unlock()
	a.metrics.appliedVersion.WithLabelValues(name).Set(float64(doc.Meta.Version))
	a.recorder.offer(doc)
}

// retainedPools returns the rollback targets of deployment name as of the
// version this instance applied last, and until when.
func (a *App) retainedPools(name string) map[string]time.Time {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.retained[name]
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

// Interface guards
var (
	_ caddy.App          = (*App)(nil)
	_ caddy.Provisioner  = (*App)(nil)
	_ caddy.CleanerUpper = (*App)(nil)
)
