package drill

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/a8e2c47e/switchback/admin"
	"github.com/a8e2c47e/switchback/configclient"
	"github.com/a8e2c47e/switchback/runbook"
)

// configPattern: a service's configuration has a good version that its
// watchers run; a bad version is written. Recovered: every watcher has
// the previous content back. The state: the service's content and what
// each watcher runs (version numbers differ by design: a rollback is a
// new version with the old content).
//
// The watchers are the drill's own configclient watchers, one streaming
// and one long-polling, so the delivery path a service uses is the one
// measured; the service is the drill's own (ServiceName), so no real
// service is touched.
type configPattern struct {
	service  string
	good     []byte
	stop     context.CancelFunc
	wg       sync.WaitGroup
	watchers []*configWatcher
	existed  bool
}

// ServiceName is the service the config pattern drills for a deployment.
func ServiceName(deployment string) string { return "switchback-drill-" + deployment }

var (
	goodConfig = json.RawMessage(`{"drill": "good", "timeout_ms": 1000}`)
	badConfig  = json.RawMessage(`{"drill": "bad", "timeout_ms": -1}`)
)

type configWatcher struct {
	name string
	mu   sync.Mutex // guards version and config
	ver  uint64
	cfg  []byte
}

func (w *configWatcher) current() (uint64, []byte) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.ver, w.cfg
}

func (*configPattern) Name() string { return "config" }

func (p *configPattern) Applicable(_ context.Context, _ *Env, t Trigger) error {
	if t == Guard {
		return fmt.Errorf("%w: no guard watches service configuration; a bad version is undone by a command", ErrNotApplicable)
	}
	return nil
}

func (p *configPattern) Prepare(ctx context.Context, env *Env) error {
	p.service = env.Service
	if p.service == "" {
		p.service = ServiceName(env.Deployment)
	}
	cur, err := env.Admin.GetService(ctx, p.service, 0)
	var nf *admin.APIError
	switch {
	case errors.As(err, &nf) && nf.Status == 404:
		if _, err := env.Admin.PutService(ctx, p.service, goodConfig, admin.WriteOptions{Reason: env.reason("the drill's service")}); err != nil {
			return err
		}
	case err != nil:
		return err
	default:
		p.existed = true
		if !jsonEqual(cur.Config, goodConfig) {
			if _, err := env.Admin.PutService(ctx, p.service, goodConfig, admin.WriteOptions{Reason: env.reason("the drill's starting configuration")}); err != nil {
				return err
			}
		}
	}
	p.good = canonical(goodConfig)
	// A pattern runs once per trigger: start from no watchers.
	p.watchers = nil
	wctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	p.stop = cancel
	for _, mode := range []configclient.Mode{configclient.Stream, configclient.LongPoll} {
		w := &configWatcher{name: string(mode)}
		p.watchers = append(p.watchers, w)
		p.wg.Go(func() {
			_ = configclient.Watch(wctx, configclient.Options{URL: env.AdminURL, Token: env.Token, Service: p.service, Mode: mode,
				Instance: "switchback-drill-" + string(mode), MinBackoff: 20 * time.Millisecond, MaxBackoff: 500 * time.Millisecond},
				func(cfg json.RawMessage, v configclient.Version) {
					w.mu.Lock()
					w.ver, w.cfg = v.Version, canonical(cfg)
					w.mu.Unlock()
				})
		})
	}
	// Ready when every watcher runs the good configuration.
	deadline := time.Now().Add(30 * time.Second)
	for !p.all(func(c []byte) bool { return bytes.Equal(c, p.good) }) {
		if time.Now().After(deadline) {
			return fmt.Errorf("the drill's watchers of %s did not get its configuration within 30s: %s", p.service, p.describe())
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
	return nil
}

func (p *configPattern) all(ok func([]byte) bool) bool {
	for _, w := range p.watchers {
		if _, c := w.current(); !ok(c) {
			return false
		}
	}
	return true
}

func (p *configPattern) describe() string {
	var parts []string
	for _, w := range p.watchers {
		v, c := w.current()
		parts = append(parts, fmt.Sprintf("%s watcher has version %d %s", w.name, v, c))
	}
	return strings.Join(parts, "; ")
}

func (p *configPattern) Capture(ctx context.Context, env *Env) (State, error) {
	s, err := env.Admin.GetService(ctx, p.service, 0)
	if err != nil {
		return nil, err
	}
	st := State{"service " + p.service: string(indent(s.Config))}
	var ws []string
	for _, w := range p.watchers {
		_, c := w.current()
		ws = append(ws, w.name+" watcher: "+string(c))
	}
	sort.Strings(ws)
	st["watchers of "+p.service] = strings.Join(ws, "\n")
	return st, nil
}

func (p *configPattern) Break(ctx context.Context, env *Env, _ Trigger) error {
	_, err := env.Admin.PutService(ctx, p.service, badConfig, admin.WriteOptions{Reason: env.reason("a bad configuration")})
	return err
}

func (p *configPattern) Rollback(env *Env) []Command {
	return Commands(runbook.Rollback("config", runbook.Params{Admin: env.AdminURL, Services: map[string]uint64{p.service: 0},
		Reason: env.reason("roll back the bad configuration")}))
}

// Probe: good when every watcher runs the previous content; failed while
// one runs the bad one.
func (p *configPattern) Probe(context.Context, *Env) Answer {
	bad := canonical(badConfig)
	return Answer{
		Good:   p.all(func(c []byte) bool { return bytes.Equal(c, p.good) }),
		Failed: !p.all(func(c []byte) bool { return !bytes.Equal(c, bad) }),
		Detail: p.describe(),
	}
}

func (p *configPattern) Cleanup(ctx context.Context, env *Env) error {
	if p.stop != nil {
		p.stop()
		p.wg.Wait()
	}
	if p.service == "" {
		return nil
	}
	cur, err := env.Admin.GetService(ctx, p.service, 0)
	if err != nil || jsonEqual(cur.Config, goodConfig) {
		return err
	}
	_, err = env.Admin.PutService(ctx, p.service, goodConfig, admin.WriteOptions{Reason: env.reason("the drill's service back to its good configuration")})
	return err
}

// canonical re-encodes JSON with sorted keys and no spaces, so equal
// documents compare equal as bytes.
func canonical(b []byte) []byte {
	var v any
	if json.Unmarshal(b, &v) != nil {
		return b
	}
	out, _ := json.Marshal(v)
	return out
}

func indent(b []byte) []byte {
	var v any
	if json.Unmarshal(b, &v) != nil {
		return b
	}
	out, _ := json.MarshalIndent(v, "", "  ")
	return out
}

func jsonEqual(a, b []byte) bool { return bytes.Equal(canonical(a), canonical(b)) }
