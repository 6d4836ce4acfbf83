package guard

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"
)

// PoolHealth is what active checks know of one pool.
type PoolHealth struct {
	// Healthy is true when every upstream answered the last check with a
	// 2xx or 3xx.
	Healthy bool `json:"healthy"`
	// Checked is when the last round of checks finished; zero before the
	// first.
	Checked time.Time `json:"checked,omitzero"`
	// LastHealthy is when the pool was last verified healthy.
	LastHealthy time.Time `json:"last_healthy,omitzero"`
	// Error describes the last failure, if the pool is unhealthy.
	Error string `json:"error,omitempty"`
}

// Target is one pool as the checker probes it.
type Target struct {
	// Upstreams are the pool's dial addresses (host:port).
	Upstreams []string
	// Transport carries the probes: the pool's own, so a probe reaches an
	// upstream the way a proxied request does (TLS included). It is handed
	// http:// URLs; a transport that speaks TLS upgrades them. Nil means
	// plain HTTP.
	Transport http.RoundTripper
}

// probeTimeout bounds one probe.
const probeTimeout = 2 * time.Second

// Checker probes every upstream of every pool on an interval. Run owns its
// goroutine; Set replaces what it checks.
type Checker struct {
	plain http.RoundTripper // for targets without a transport
	now   func() time.Time

	// mu protects targets, uri, interval, latency and state.
	mu       sync.Mutex
	targets  map[string]Target // by pool
	uri      string
	interval time.Duration
	latency  time.Duration // slowest passing answer; 0: no bound
	state    map[string]PoolHealth
	changed  chan struct{} // wakes Run after Set
}

// NewChecker returns a checker with nothing to check.
func NewChecker(now func() time.Time) *Checker {
	return &Checker{
		// Probe the upstream itself: no proxy from the environment.
		plain:   &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 2},
		now:     now,
		state:   map[string]PoolHealth{},
		changed: make(chan struct{}, 1),
	}
}

// Set replaces the pools to check, the path and the interval; uri "" stops
// checking. State of pools that remain is kept.
func (c *Checker) Set(pools map[string]Target, uri string, interval time.Duration) {
	c.mu.Lock()
	c.targets, c.uri, c.interval = pools, uri, interval
	for p := range c.state {
		if _, ok := pools[p]; !ok || uri == "" {
			delete(c.state, p)
		}
	}
	c.mu.Unlock()
	select {
	case c.changed <- struct{}{}:
	default:
	}
}

// SetLatency bounds how long a check may take to pass; 0 removes the
// bound. It applies from the next round.
func (c *Checker) SetLatency(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.latency = d
}

// Health returns a pool's state; ok is false when it is not checked.
func (c *Checker) Health(pool string) (PoolHealth, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	h, ok := c.state[pool]
	return h, ok
}

// All returns every checked pool's state.
func (c *Checker) All() map[string]PoolHealth {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]PoolHealth, len(c.state))
	for k, v := range c.state {
		out[k] = v
	}
	return out
}

// Run checks until ctx ends.
func (c *Checker) Run(ctx context.Context) {
	for {
		c.mu.Lock()
		targets, uri, interval := c.targets, c.uri, c.interval
		c.mu.Unlock()
		if uri != "" {
			c.round(ctx, targets, uri)
		}
		if interval <= 0 {
			interval = time.Hour // idle until Set
		}
		t := time.NewTimer(interval)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-c.changed:
			t.Stop()
		case <-t.C:
		}
	}
}

func (c *Checker) round(ctx context.Context, targets map[string]Target, uri string) {
	c.mu.Lock()
	bound := c.latency
	c.mu.Unlock()
	for pool, tg := range targets {
		transport := tg.Transport
		if transport == nil {
			transport = c.plain
		}
		client := &http.Client{
			Timeout:   probeTimeout,
			Transport: transport,
			// A redirect is an answer, not somewhere else to check.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
		var failure string
		for _, u := range tg.Upstreams {
			if err := c.probe(ctx, client, "http://"+strings.TrimPrefix(u, "http://")+uri, bound); err != "" {
				failure = u + ": " + err
				break
			}
		}
		now := c.now()
		c.mu.Lock()
		if _, still := c.targets[pool]; still && c.uri != "" {
			h := c.state[pool]
			h.Checked, h.Healthy, h.Error = now, failure == "", failure
			if h.Healthy {
				h.LastHealthy = now
			}
			c.state[pool] = h
		}
		c.mu.Unlock()
	}
}

// probe checks one upstream: an answer under 400, within bound when one
// is set. It returns why the check failed, or "".
func (c *Checker) probe(ctx context.Context, client *http.Client, url string, bound time.Duration) string {
	start := c.now()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err.Error()
	}
	req.Header.Set("User-Agent", "switchback-health")
	resp, err := client.Do(req)
	if err != nil {
		return err.Error()
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode >= 400 {
		return resp.Status
	}
	if took := c.now().Sub(start); bound > 0 && took > bound {
		return fmt.Sprintf("answered in %v, slower than the %v bound (health_latency)", took.Round(time.Millisecond), bound)
	}
	return ""
}
