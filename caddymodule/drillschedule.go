package caddymodule

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"go.uber.org/zap"

	"github.com/a8e2c47e/switchback/drill"
	"github.com/a8e2c47e/switchback/drill/result"
)

// DrillSchedule makes the elected instance drill the deployments marked
// staging on a schedule (`drill` in the switchback global option).
type DrillSchedule struct {
	// Every is how often each pattern is drilled per deployment (default
	// 720h, a month of 30 days).
	Every caddy.Duration `json:"every,omitempty"`
	// Patterns are the patterns drilled (default flip, flag, config).
	Patterns []string `json:"patterns,omitempty"`
	// Traffic maps a staging deployment to the URL its clients reach it
	// at, where the drill sends its synthetic requests; a staging
	// deployment without one is not drilled (and the log says so).
	Traffic map[string]string `json:"traffic,omitempty"`
	// Token is the admin API's bearer token for the drills, needed when
	// the admin API has tokens (an operator's); placeholders such as
	// {env.SWITCHBACK_DRILL_TOKEN} are read at provisioning.
	Token string `json:"token,omitempty"`
}

const (
	defaultDrillEvery = 720 * time.Hour
	// drillTick is how often the elected instance looks for due drills;
	// drillPoll how often it checks whether it was elected, so a new
	// leader looks at once.
	drillTick = time.Minute
	drillPoll = 2 * time.Second
)

var defaultDrillPatterns = []string{"flip", "flag", "config"}

// parseDrillSchedule reads
//
//	drill {
//		every    720h
//		patterns flip flag config
//		traffic  <deployment> <url>    # repeatable
//		token    <token>               # when the admin API has tokens
//	}
func parseDrillSchedule(d *caddyfile.Dispenser) (*DrillSchedule, error) {
	if d.NextArg() {
		return nil, d.Errf("drill takes a block, not %q", d.Val())
	}
	s := &DrillSchedule{}
	given := settings{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		if d.Val() != "traffic" {
			if err := given.once(d); err != nil {
				return nil, err
			}
		}
		switch d.Val() {
		case "every":
			v, err := oneArg(d)
			if err != nil {
				return nil, err
			}
			dur, err := caddy.ParseDuration(v)
			if err != nil || dur < time.Minute {
				return nil, d.Errf("drill every %q: want a duration of at least 1m, like 720h", v)
			}
			s.Every = caddy.Duration(dur)
		case "patterns":
			s.Patterns = d.RemainingArgs()
			if len(s.Patterns) == 0 {
				return nil, d.Errf("drill patterns needs at least one of %s", strings.Join(drill.Names(), ", "))
			}
			for _, p := range s.Patterns {
				if drill.Lookup(p) == nil {
					return nil, d.Errf("drill pattern %q: want one of %s", p, strings.Join(drill.Names(), ", "))
				}
			}
		case "traffic":
			args := d.RemainingArgs()
			if len(args) != 2 || !strings.HasPrefix(args[1], "http://") && !strings.HasPrefix(args[1], "https://") {
				return nil, d.Errf("drill traffic %q: want a deployment name and the URL its clients use, like: traffic checkout https://checkout.staging", args)
			}
			if s.Traffic == nil {
				s.Traffic = map[string]string{}
			}
			if _, dup := s.Traffic[args[0]]; dup {
				return nil, d.Errf("drill traffic %s given twice", args[0])
			}
			s.Traffic[args[0]] = args[1]
		case "token":
			v, err := oneArg(d)
			if err != nil {
				return nil, err
			}
			s.Token = v
		default:
			return nil, d.Errf("unknown drill setting %q; accepted: every, patterns, traffic, token", d.Val())
		}
	}
	return s, nil
}

func (s *DrillSchedule) every() time.Duration {
	if s.Every <= 0 {
		return defaultDrillEvery
	}
	return time.Duration(s.Every)
}

func (s *DrillSchedule) patterns() []string {
	if len(s.Patterns) == 0 {
		return defaultDrillPatterns
	}
	return s.Patterns
}

// runDrills drills what is due while this instance is the elected driver;
// it returns when ctx ends (Start runs it, Stop waits for it).
func (a *App) runDrills(ctx context.Context) {
	t := time.NewTicker(drillPoll)
	defer t.Stop()
	var (
		led    bool
		looked time.Time
	)
	for {
		leading := a.control.Leading()
		if leading && (!led || a.now().Sub(looked) >= drillTick) {
			a.drillDue(ctx, a.now())
			looked = a.now()
		}
		led = leading
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// drillDue runs every drill due at now, one at a time, as `switchback
// drill PATTERN --admin ... --deployment ... --traffic ...` run here
// would: the results are recorded in the store's drill history through
// the admin API, which is what makes the next one due later.
func (a *App) drillDue(ctx context.Context, now time.Time) {
	due, err := a.scheduledDrills(ctx, now)
	if err != nil {
		a.logger.Warn("drills: cannot tell which are due", zap.Error(err))
		return
	}
	binary, err := os.Executable()
	if err != nil {
		a.logger.Warn("drills: cannot find this program to run the rollback commands", zap.Error(err))
		return
	}
	adminURL := a.localAdminURL()
	if a.drillAttempts == nil {
		a.drillAttempts = map[string]time.Time{}
	}
	for _, s := range due {
		for _, p := range s.Patterns {
			if ctx.Err() != nil || !a.control.Leading() {
				return
			}
			// The history makes a drill due; this remembers the attempt
			// too, so a drill whose result could not be recorded (a token
			// that may not write drills, a store error) does not break
			// staging again every minute.
			key := s.Deployment + " " + p
			if last, ok := a.drillAttempts[key]; ok && now.Sub(last) < a.Drill.every() {
				continue
			}
			a.drillAttempts[key] = now
			args := []string{p, "--admin", adminURL, "--deployment", s.Deployment, "--traffic", a.Drill.Traffic[s.Deployment], "--json"}
			var out, errOut bytes.Buffer
			code := drill.Main(ctx, args, &out, &errOut, a.drillEnv, binary)
			var rs []result.Result
			_ = json.Unmarshal(out.Bytes(), &rs)
			fields := []zap.Field{zap.String("deployment", s.Deployment), zap.String("pattern", p), zap.Int("exit", code)}
			for _, r := range rs {
				fields = append(fields, zap.String(string(r.Trigger), outcome(r)))
			}
			if code != 0 {
				a.logger.Warn("drills: scheduled drill did not pass", append(fields, zap.String("stderr", strings.TrimSpace(errOut.String())))...)
				continue
			}
			a.logger.Info("drills: scheduled drill passed", fields...)
		}
	}
}

// drillEnv is the environment scheduled drills see: the token, and
// nothing of this process's own (its SWITCHBACK_ADMIN is not theirs).
func (a *App) drillEnv(name string) string {
	if name == "SWITCHBACK_TOKEN" {
		return a.drillToken
	}
	return ""
}

func outcome(r result.Result) string {
	switch {
	case r.NotApplicable != "":
		return "not applicable"
	case r.Passed && r.Flagged:
		return "passed, flagged"
	case r.Passed:
		return "passed"
	}
	return "failed: " + r.Error
}

// scheduledDrills reads the deployments marked staging and the drill
// history, and asks drill.Due what to run. A staging deployment without a
// traffic URL is skipped with a warning.
func (a *App) scheduledDrills(ctx context.Context, now time.Time) ([]drill.Scheduled, error) {
	names, err := a.store.List(ctx)
	if err != nil {
		return nil, fmt.Errorf("list deployments: %w", err)
	}
	var staging []string
	for _, n := range names {
		doc, err := a.store.Get(ctx, n)
		if err != nil {
			return nil, fmt.Errorf("deployment %s: %w", n, err)
		}
		if doc.Config.Environment != "staging" {
			continue
		}
		if a.Drill.Traffic[n] == "" {
			a.logger.Warn("drills: a staging deployment without a traffic URL is not drilled; add 'traffic "+n+" URL' to the drill block", zap.String("deployment", n))
			continue
		}
		staging = append(staging, n)
	}
	slices.Sort(staging)
	stored, err := a.store.Drills(ctx, 0)
	if err != nil {
		return nil, fmt.Errorf("drill history: %w", err)
	}
	history := make([]result.Result, 0, len(stored))
	for _, d := range stored {
		var r result.Result
		if json.Unmarshal(d.Result, &r) == nil {
			history = append(history, r)
		}
	}
	return drill.Due(a.Drill.every(), a.Drill.patterns(), staging, history, now), nil
}

// localAdminURL is this instance's admin API as a client on this host reaches
// it: a listener on every address is reached on loopback.
func (a *App) localAdminURL() string {
	addr := a.Admin
	if a.adminLn != nil {
		addr = a.adminLn.Addr().String()
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "http://" + addr
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port)
}
