package configstore

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Backoff between attempts to reach etcd while it is unavailable.
const (
	minRetry = 50 * time.Millisecond
	maxRetry = 2 * time.Second
)

// Watch calls apply with every deployment's current document, then with
// every new version as it is written, until ctx ends; it then returns
// ctx.Err(). Versions of one deployment arrive in order, each once; apply
// is called from the goroutine that called Watch, so it must not block
// for long.
//
// Watch resumes an interrupted watch from the last revision it saw. If
// etcd has compacted that revision away, it lists the current documents
// again and watches from there: versions in between are skipped, the
// latest is delivered. While etcd is unreachable it retries with backoff
// (50ms growing to 2s) and keeps going when etcd is back.
//
// health, if not nil, is called from the same goroutine when reachability
// changes: first once the first attempt to list has succeeded or failed,
// then on every change, with the error that made etcd count as
// unreachable (usually wrapping ErrUnavailable). Besides watching, Watch checks etcd answers a read every
// health interval (WithHealthInterval), because a watch stream alone does
// not notice that etcd went away.
//
// Watch returns early only for a nil apply or a closed client.
func (s *Store) Watch(ctx context.Context, apply func(Document), health func(healthy bool, err error)) error {
	if apply == nil {
		return errors.New("configstore: Watch needs an apply function")
	}
	w := &watcher{s: s, apply: apply, health: health, seen: make(map[string]uint64)}
	return w.run(ctx)
}

type watcher struct {
	s      *Store
	apply  func(Document)
	health func(bool, error)

	seen     map[string]uint64 // deployment → last version applied
	rev      int64             // every event up to rev has been handled
	reported bool              // health has been called at least once
	healthy  bool              // what health was last told
	failures int               // consecutive failed attempts
}

func (w *watcher) run(ctx context.Context) error {
	relist := true
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := w.s.client.Ctx().Err(); err != nil {
			return fmt.Errorf("configstore: watch: etcd client closed: %w", err)
		}
		var err error
		if relist {
			err = w.list(ctx)
		} else {
			// Check etcd answers before resuming; the watch stream itself
			// would wait silently.
			var rev int64
			rev, err = w.s.probe(ctx)
			if err == nil && rev < w.rev {
				// The store went back in time (restored or replaced): what
				// we saw is no guide to what is there now.
				w.seen = make(map[string]uint64)
				relist = true
				continue
			}
		}
		if err != nil {
			w.fail(ctx, err)
			continue
		}
		relist = false
		w.ok()
		relist, err = w.watch(ctx)
		if err != nil {
			w.fail(ctx, err)
		}
	}
}

// list delivers every current document that is newer than what was
// applied, and sets rev to the revision listed.
func (w *watcher) list(ctx context.Context) error {
	lctx, cancel := w.s.op(ctx)
	defer cancel()
	docs, rev, err := w.s.listCurrent(lctx)
	if err != nil {
		return err
	}
	for _, d := range docs {
		w.deliver(d)
	}
	w.rev = rev
	return nil
}

// watch follows changes from rev+1 until the watch breaks. It returns
// relist true if the revision it wanted is compacted, or the error that
// broke it.
func (w *watcher) watch(ctx context.Context) (relist bool, err error) {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	base := w.s.deploymentsPrefix()
	// client.Watch blocks until the stream is open, which while etcd is
	// unreachable is until wctx ends; the health check below must run
	// meanwhile to notice, so the stream opens in a goroutine of its own.
	opened := make(chan clientv3.WatchChan, 1)
	go func() {
		opened <- w.s.client.Watch(wctx, base, clientv3.WithPrefix(), clientv3.WithRev(w.rev+1), clientv3.WithFilterDelete())
	}()
	var wch clientv3.WatchChan // nil, so never ready, until opened
	defer func() {
		cancel()
		if wch == nil {
			<-opened
		}
	}()
	pending := opened
	tick := time.NewTicker(w.s.healthInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return false, nil
		case wch = <-pending:
			pending = nil
		case <-tick.C:
			if _, err := w.s.probe(ctx); err != nil {
				return false, err
			}
		case wr, ok := <-wch:
			if !ok {
				return false, fmt.Errorf("%w: watch stream closed", ErrUnavailable)
			}
			if err := wr.Err(); err != nil {
				if errors.Is(err, rpctypes.ErrCompacted) {
					return true, nil
				}
				return false, etcdErr("watch", err)
			}
			for _, ev := range wr.Events {
				w.rev = ev.Kv.ModRevision
				if ev.Type != mvccpb.PUT {
					continue
				}
				key := string(ev.Kv.Key)
				name, ok := strings.CutSuffix(strings.TrimPrefix(key, base), "/current")
				if !ok || strings.Contains(name, "/") {
					continue
				}
				// A document the store did not write is skipped.
				if d, err := decodeDocument(key, ev.Kv.Value); err == nil && d.Config.Name == name {
					w.deliver(d)
				}
			}
			if wr.IsProgressNotify() {
				w.rev = max(w.rev, wr.Header.Revision)
			}
		}
	}
}

// deliver applies d unless its version was applied already.
func (w *watcher) deliver(d Document) {
	name := d.Config.Name
	if d.Meta.Version <= w.seen[name] {
		return
	}
	w.seen[name] = d.Meta.Version
	w.apply(d)
}

func (w *watcher) ok() {
	w.failures = 0
	if !w.reported || !w.healthy {
		w.reported, w.healthy = true, true
		if w.health != nil {
			w.health(true, nil)
		}
	}
}

// fail reports err if etcd was healthy, then waits before the next attempt.
func (w *watcher) fail(ctx context.Context, err error) {
	if ctx.Err() != nil {
		return
	}
	if !w.reported || w.healthy {
		w.reported, w.healthy = true, false
		if w.health != nil {
			w.health(false, err)
		}
	}
	w.failures++
	_ = sleep(ctx, retryBackoff(w.failures))
}

// retryBackoff doubles from minRetry to maxRetry, with up to 20% jitter so
// that instances do not retry in step.
func retryBackoff(failures int) time.Duration {
	d := maxRetry
	if failures < 16 {
		d = min(minRetry<<(failures-1), maxRetry)
	}
	return d - rand.N(d/5)
}

// probe checks that etcd serves a linearizable read within the timeout and
// returns its revision.
func (s *Store) probe(ctx context.Context) (int64, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	resp, err := s.kv.Get(ctx, s.deploymentsPrefix(), clientv3.WithCountOnly())
	if err != nil {
		return 0, etcdErr("health check", err)
	}
	return resp.Header.Revision, nil
}
