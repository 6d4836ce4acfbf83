package caddymodule

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/a8e2c47e/switchback/admin"
	"github.com/a8e2c47e/switchback/gateway"
	"github.com/a8e2c47e/switchback/ofrep"
)

// ofrepListener is the OFREP server of one App: its HTTP server on its own
// listener, and the bindings that tell it of every new version.
type ofrepListener struct {
	srv    *ofrep.Server
	http   *http.Server
	ln     net.Listener
	detach []func()
	cancel context.CancelFunc
	// stopSeed ends the read of the store's history; seeded is closed
	// when it has returned.
	stopSeed context.CancelFunc
	seeded   chan struct{}
	serving  bool          // Serve was started, and owns the listener
	stopped  chan struct{} // closed when Serve has returned
}

// startOFREP serves OFREP on a.OFREP. Like the admin API, the listener
// comes from Caddy's listener pool, so a reload's new app binds the address
// while the old one still holds it. Each deployment live in this config is
// bound with a gateway.Binder, so the server hears of a version as it goes
// live and its event streams tell clients to refetch.
func (a *App) startOFREP() error {
	if a.OFREP == "" {
		return nil
	}
	opts := ofrep.Options{Source: registrySource{}, Registerer: a.ctx.GetMetricsRegistry()}
	if a.AdminTokens != "" {
		ft, err := admin.LoadFlagsTokens(a.AdminTokens)
		if err != nil {
			return fmt.Errorf("switchback ofrep: %w", err)
		}
		opts.Tokens = flagsTokens{ft}
		if ft.Len() == 0 {
			a.logger.Warn("OFREP: the tokens file has no tokens of role flags, so every OFREP client is refused; add lines NAME flags TOKEN_SHA256",
				zap.String("admin_tokens", a.AdminTokens))
		}
		// Stream URLs are signed with a key every instance sharing the
		// tokens file derives alike, so a load balancer may send the
		// stream to another instance than the evaluation; a new file
		// (a token rotated) invalidates them, and providers refetch.
		b, err := os.ReadFile(a.AdminTokens)
		if err != nil {
			return fmt.Errorf("switchback ofrep: %w", err)
		}
		sum := sha256.Sum256(append([]byte("switchback ofrep event streams\x00"), b...))
		opts.StreamKey = sum[:]
	}
	srv, err := ofrep.New(opts)
	if err != nil {
		return fmt.Errorf("switchback ofrep: %w", err)
	}
	na, err := caddy.ParseNetworkAddress(a.OFREP)
	if err != nil {
		return fmt.Errorf("switchback ofrep %q: %w", a.OFREP, err)
	}
	lnAny, err := na.Listen(a.ctx, 0, net.ListenConfig{})
	if err != nil {
		return fmt.Errorf("switchback ofrep %q: %w", a.OFREP, err)
	}
	o := &ofrepListener{srv: srv, ln: lnAny.(net.Listener), stopped: make(chan struct{})}
	var bindErr error
	var names []string
	deployments.Range(func(k, val any) bool {
		detach, err := val.(deploymentEntry).Attach(ofrepBinder{srv})
		if err != nil {
			bindErr = err
			return false
		}
		o.detach = append(o.detach, detach)
		names = append(names, k.(string))
		return true
	})
	seedCtx, stopSeed := context.WithCancel(context.Background())
	o.stopSeed, o.seeded = stopSeed, make(chan struct{})
	go func() {
		defer close(o.seeded)
		a.seedOFREP(seedCtx, srv, names)
	}()
	base, cancel := context.WithCancel(context.Background())
	o.cancel = cancel
	o.http = &http.Server{
		Handler: srv,
		// Event streams end when OFREP stops, so a reload never waits on
		// an open browser tab.
		BaseContext:       func(net.Listener) context.Context { return base },
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		// No WriteTimeout: event streams stay open.
	}
	a.ofrep = o
	if bindErr != nil {
		_ = a.stopOFREP()
		return fmt.Errorf("switchback ofrep: %w", bindErr)
	}
	o.serving = true
	go func() {
		defer close(o.stopped)
		if err := o.http.Serve(o.ln); err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
			a.logger.Error("OFREP stopped", zap.Error(err))
		}
	}()
	a.logger.Info("OFREP listening", zap.String("address", o.ln.Addr().String()), zap.Bool("tokens", opts.Tokens != nil))
	return nil
}

// stopOFREP unbinds the deployments, ends the event streams and shuts the
// server down.
func (a *App) stopOFREP() error {
	o := a.ofrep
	if o == nil {
		return nil
	}
	a.ofrep = nil
	o.stopSeed()
	<-o.seeded
	for _, detach := range o.detach {
		detach()
	}
	o.srv.Close()
	o.cancel()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := o.http.Shutdown(ctx)
	if errors.Is(err, context.DeadlineExceeded) {
		err = o.http.Close()
	}
	if o.serving {
		<-o.stopped
	} else {
		// A binding failed before Serve started: the listener is still
		// ours to close.
		err = errors.Join(err, o.ln.Close())
	}
	return err
}

// ofrepHistory is how many recent versions per deployment are read at
// start to tell killed flags from flags never rolled out.
const ofrepHistory = 50

// seedOFREP tells the OFREP server which flags were above 0% in the recent
// versions of each deployment, so a flag killed before this instance
// started answers DISABLED like on instances that saw the kill. Reads are
// bounded (ofrepHistory versions per deployment) and done once, in the
// background; failures only leave such flags STATIC.
func (a *App) seedOFREP(ctx context.Context, srv *ofrep.Server, names []string) {
	if a.store == nil {
		return
	}
	for _, name := range names {
		metas, err := a.store.History(ctx, name, ofrepHistory)
		if err != nil {
			a.logger.Debug("OFREP: reading history", zap.String("deployment", name), zap.Error(err))
			continue
		}
		var on []string
		for _, m := range metas {
			doc, err := a.store.Version(ctx, name, m.Version)
			if err != nil {
				a.logger.Debug("OFREP: reading a version", zap.String("deployment", name), zap.Uint64("version", m.Version), zap.Error(err))
				continue
			}
			for f, flag := range doc.Config.Flags {
				if flag.Percent > 0 {
					on = append(on, f)
				}
			}
		}
		srv.Seen(name, on...)
	}
}

// ofrepAddr is where OFREP listens, for tests; "" when it is off.
func (a *App) ofrepAddr() string {
	if a.ofrep == nil {
		return ""
	}
	return a.ofrep.ln.Addr().String()
}

// registrySource reads the live deployments of every loaded config.
type registrySource struct{}

func (registrySource) Deployments() []string {
	var names []string
	deployments.Range(func(k, val any) bool {
		if val.(deploymentEntry).Snapshot() != nil {
			names = append(names, k.(string))
		}
		return true
	})
	return names
}

func (registrySource) Snapshot(name string) (*gateway.Snapshot, bool) {
	dep, ok := LookupDeployment(name)
	if !ok || dep.Snapshot() == nil {
		return nil, false
	}
	return dep.Snapshot(), true
}

// ofrepBinder tells the OFREP server of each version as it goes live.
type ofrepBinder struct{ srv *ofrep.Server }

func (b ofrepBinder) Prepare(snap *gateway.Snapshot) (func(), error) {
	return func() { b.srv.Changed(snap) }, nil
}

// flagsTokens adapts the tokens file's flags tokens to OFREP.
type flagsTokens struct{ ft *admin.FlagsTokens }

func (t flagsTokens) Lookup(token string) (ofrep.Principal, bool) {
	name, dep, ok := t.ft.Lookup(token)
	return ofrep.Principal{Name: name, Deployment: dep}, ok
}

func (t flagsTokens) Named(name string) (ofrep.Principal, bool) {
	dep, ok := t.ft.Named(name)
	return ofrep.Principal{Name: name, Deployment: dep}, ok
}

// Interface guards
var (
	_ ofrep.Source   = registrySource{}
	_ ofrep.Tokens   = flagsTokens{}
	_ gateway.Binder = ofrepBinder{}
)
