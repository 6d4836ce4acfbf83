package drill

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/a8e2c47e/switchback/configstore"
	"github.com/a8e2c47e/switchback/guard"
)

// guardWatch times the guard's part in a guard-triggered drill: when its
// view first shows the subject breaching (detected) and when it wrote the
// fallback (decided, the event's time). The view is read every 20 ms:
// when the guard detects and decides within one of its 25 ms ticks the
// breach may never be seen, and detected is then the decision.
type guardWatch struct {
	done chan struct{}
	out  guardTimes
}

type guardTimes struct{ detected, decided time.Time }

func startGuardWatch(ctx context.Context, env *Env, subject string, trigger time.Time, now func() time.Time) *guardWatch {
	g := &guardWatch{done: make(chan struct{})}
	go func() {
		defer close(g.done)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			if g.out.detected.IsZero() {
				if v, err := env.Admin.Guard(ctx, env.Deployment); err == nil && breaching(v, subject) {
					g.out.detected = now()
				}
			}
			if evs, err := events(ctx, env); err == nil {
				for _, ev := range evs {
					if ev.Subject == subject && (ev.Kind == "fallback" || ev.Kind == "flag_off") && !ev.Time.Before(trigger.Add(-time.Second)) {
						g.out.decided = ev.Time
						if g.out.detected.IsZero() || g.out.detected.After(ev.Time) {
							g.out.detected = ev.Time
						}
						return
					}
				}
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	return g
}

func (g *guardWatch) wait() guardTimes {
	<-g.done
	return g.out
}

// breaching reports whether the guard's view shows subject over its
// policy: pool:NAME or flag:NAME (its on cohort).
func breaching(v guard.View, subject string) bool {
	kind, name := splitSubject(subject)
	switch kind {
	case "pool":
		return v.Pools[name].Breach != ""
	case "flag":
		return v.Flags[name].On.Breach != ""
	}
	return false
}

// events reads the deployment's newest events from the admin API.
func events(ctx context.Context, env *Env) ([]configstore.Event, error) {
	var out struct {
		Events []configstore.Event `json:"events"`
	}
	err := getJSON(ctx, env, "/api/v1/events?limit=20&deployment="+url.QueryEscape(env.Deployment), &out)
	return out.Events, err
}

// getJSON reads an admin API path into out, with the drill's token.
func getJSON(ctx context.Context, env *Env, path string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(env.AdminURL, "/")+path, nil)
	if err != nil {
		return err
	}
	if env.Token != "" {
		req.Header.Set("Authorization", "Bearer "+env.Token)
	}
	resp, err := httpClient(env).Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s: %s", path, resp.Status, strings.TrimSpace(string(body)))
	}
	return json.Unmarshal(body, out)
}

func httpClient(env *Env) *http.Client {
	if env.HTTP != nil {
		return env.HTTP
	}
	return http.DefaultClient
}

func splitSubject(s string) (kind, name string) {
	kind, name, _ = strings.Cut(s, ":")
	return kind, name
}
