// Package configclient delivers a service's configuration from the
// Switchback admin API to the running service: it watches the service's
// document (server-sent events, or long polls), reconnects with backoff
// when the API is away, keeps the last version it received in a file so
// that a service starting during an outage still gets its configuration,
// and calls a typed callback with every new version.
//
//	type Config struct {
//		DB struct{ Pool struct{ Max int `json:"max"` } `json:"pool"` } `json:"db"`
//	}
//	err := configclient.Watch(ctx, configclient.Options{
//		URL: "http://127.0.0.1:9180", Service: "payments",
//		LastKnownGood: "/var/lib/payments/config.json",
//	}, func(cfg Config, v configclient.Version) { pool.Resize(cfg.DB.Pool.Max) })
package configclient

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Mode is how Watch waits for new versions.
type Mode string

// Modes of Watch.
const (
	// Stream keeps one server-sent events stream open (the default).
	Stream Mode = "sse"
	// LongPoll asks again after each answer; for proxies that buffer
	// streams.
	LongPoll Mode = "poll"
)

// Version is one version of a service's configuration, as the API sends
// it.
type Version struct {
	Name    string          `json:"name"`
	Version uint64          `json:"version"`
	Config  json.RawMessage `json:"config"`
	// GrayApplied says Config is a gray release's document.
	GrayApplied bool `json:"gray_applied,omitempty"`
	Meta        struct {
		Time      time.Time `json:"time"`
		Author    string    `json:"author"`
		Reason    string    `json:"reason"`
		Summary   string    `json:"summary"`
		ChangeSet string    `json:"changeset,omitempty"`
	} `json:"meta"`
}

// Options configure Watch. URL and Service are required.
type Options struct {
	// URL is the admin API, like http://127.0.0.1:9180.
	URL string
	// Service is the service whose configuration to watch.
	Service string
	// Token is sent as a bearer token when not empty.
	Token string
	// Instance identifies this instance (a host or pod name): during a
	// gray release it decides whether it gets the gray document.
	Instance string
	// Mode is Stream (default) or LongPoll.
	Mode Mode
	// LastKnownGood is a file that holds the last version received,
	// written atomically; Watch starts from it. Empty: none.
	LastKnownGood string
	// Wait is how long one long poll waits; default 60s.
	Wait time.Duration
	// MinBackoff and MaxBackoff bound the wait before reconnecting;
	// defaults 100ms and 5s.
	MinBackoff, MaxBackoff time.Duration
	// HTTP sends the requests; default a client without a timeout (the
	// stream and long polls are long by design).
	HTTP *http.Client
	// OnError, when set, hears every failed attempt and every version
	// whose configuration does not decode into the callback's type.
	OnError func(error)
}

func (o *Options) defaults() error {
	u, err := url.Parse(o.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("configclient: URL %q: want http://host:port or https://host:port", o.URL)
	}
	o.URL = strings.TrimSuffix(u.String(), "/")
	if o.Service == "" || strings.ContainsAny(o.Service, "/?#% ") {
		return fmt.Errorf("configclient: service %q: want a service name", o.Service)
	}
	switch o.Mode {
	case "":
		o.Mode = Stream
	case Stream, LongPoll:
	default:
		return fmt.Errorf("configclient: mode %q: want sse or poll", o.Mode)
	}
	if o.Wait <= 0 {
		o.Wait = 60 * time.Second
	}
	if o.MinBackoff <= 0 {
		o.MinBackoff = 100 * time.Millisecond
	}
	if o.MaxBackoff < o.MinBackoff {
		o.MaxBackoff = max(5*time.Second, o.MinBackoff)
	}
	if o.HTTP == nil {
		o.HTTP = &http.Client{}
	}
	return nil
}

// Watch calls apply with the service's configuration decoded into T: first
// the last known good version from the file (if any), then every newer
// version from the admin API, in order, each once, until ctx ends; it then
// returns ctx's error. apply runs on Watch's goroutine. While the API is
// unreachable Watch retries with backoff and keeps going when it is back.
// A version that does not decode into T is reported to OnError and
// skipped: the service keeps running on the last one that did.
func Watch[T any](ctx context.Context, o Options, apply func(cfg T, v Version)) error {
	if apply == nil {
		return errors.New("configclient: Watch needs an apply function")
	}
	if err := o.defaults(); err != nil {
		return err
	}
	w := &watcher[T]{o: o, apply: apply}
	if o.LastKnownGood != "" {
		if b, err := os.ReadFile(o.LastKnownGood); err == nil {
			var v Version
			if json.Unmarshal(b, &v) == nil && v.Name == o.Service {
				w.deliver(v, false)
			}
		}
	}
	for failures := 0; ; {
		var err error
		if o.Mode == Stream {
			err = w.stream(ctx)
		} else {
			err = w.poll(ctx)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err == nil {
			failures = 0
			continue
		}
		w.report(err)
		failures++
		t := time.NewTimer(backoff(o.MinBackoff, o.MaxBackoff, failures))
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// backoff doubles from lo up to hi, less up to 20% jitter so that many
// clients do not reconnect in step.
func backoff(lo, hi time.Duration, failures int) time.Duration {
	d := hi
	if failures < 30 {
		d = min(lo<<(failures-1), hi)
	}
	return d - rand.N(d/5+1)
}

type watcher[T any] struct {
	o     Options
	apply func(T, Version)
	last  uint64
}

func (w *watcher[T]) report(err error) {
	if w.o.OnError != nil {
		w.o.OnError(err)
	}
}

// deliver decodes v and applies it if it is newer than the last one;
// save writes it to the last-known-good file first.
func (w *watcher[T]) deliver(v Version, save bool) {
	if v.Version <= w.last {
		return
	}
	var cfg T
	if err := json.Unmarshal(v.Config, &cfg); err != nil {
		w.last = v.Version
		w.report(fmt.Errorf("configclient: %s version %d: decode: %w", v.Name, v.Version, err))
		return
	}
	if save && w.o.LastKnownGood != "" {
		if b, err := json.Marshal(v); err == nil {
			if err := WriteFileAtomic(w.o.LastKnownGood, b, 0o600); err != nil {
				w.report(err)
			}
		}
	}
	w.last = v.Version
	w.apply(cfg, v)
}

func (w *watcher[T]) request(ctx context.Context, query string) (*http.Response, error) {
	if w.o.Instance != "" {
		query += "&instance=" + url.QueryEscape(w.o.Instance)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, w.o.URL+"/api/v1/services/"+w.o.Service+"?"+query, nil)
	if err != nil {
		return nil, err
	}
	if w.o.Token != "" {
		req.Header.Set("Authorization", "Bearer "+w.o.Token)
	}
	resp, err := w.o.HTTP.Do(req)
	if err != nil {
		return nil, fmt.Errorf("configclient: %w", err)
	}
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusNotModified {
		defer resp.Body.Close()
		var e struct {
			Error string `json:"error"`
		}
		_ = json.NewDecoder(resp.Body).Decode(&e)
		return nil, fmt.Errorf("configclient: %s: HTTP %d: %s", w.o.Service, resp.StatusCode, e.Error)
	}
	return resp, nil
}

// poll makes one long poll.
func (w *watcher[T]) poll(ctx context.Context) error {
	resp, err := w.request(ctx, "wait="+w.o.Wait.String()+"&after="+strconv.FormatUint(w.last, 10))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotModified {
		return nil
	}
	var v Version
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		return fmt.Errorf("configclient: decode answer: %w", err)
	}
	w.deliver(v, true)
	return nil
}

// stream follows the event stream until it breaks.
func (w *watcher[T]) stream(ctx context.Context) error {
	resp, err := w.request(ctx, "follow=1&after="+strconv.FormatUint(w.last, 10))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	var event string
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "event: "):
			event = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			data := strings.TrimPrefix(line, "data: ")
			if event == "error" {
				return fmt.Errorf("configclient: stream: %s", data)
			}
			var v Version
			if err := json.Unmarshal([]byte(data), &v); err != nil {
				return fmt.Errorf("configclient: decode event: %w", err)
			}
			w.deliver(v, true)
		case line == "":
			event = ""
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("configclient: stream: %w", err)
	}
	return errors.New("configclient: stream closed")
}

// WriteFileAtomic writes b to path through a temporary file in the same
// directory and a rename, so that a reader sees the old content or the
// new, never a part.
func WriteFileAtomic(path string, b []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	_, werr := f.Write(b)
	if werr == nil {
		werr = f.Sync()
	}
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Chmod(tmp, perm)
	}
	if werr == nil {
		werr = os.Rename(tmp, path)
	}
	if werr != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, werr)
	}
	return nil
}
