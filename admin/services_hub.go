package admin

import (
	"context"
	"sync"
	"time"

	"github.com/a8e2c47e/switchback/configstore"
)

// serviceHub shares one store watch per service among all the long polls
// waiting on it, so a write wakes a thousand polls through one etcd
// watcher instead of a thousand. A service's watch runs while at least one
// poll waits: the first subscriber starts it, the last one stops it and
// waits for it to end.
type serviceHub struct {
	store *configstore.Store
	mu    sync.Mutex // protects topics
	// topics are the services being watched.
	topics map[string]*topic
}

type topic struct {
	subs   map[*subscriber]struct{}
	cancel context.CancelFunc
	done   chan struct{}
}

// subscriber receives the newest version seen; an older one not yet read
// is replaced, since a long poll only wants the latest.
type subscriber struct {
	ch chan configstore.ServiceDoc
}

func newServiceHub(store *configstore.Store) *serviceHub {
	return &serviceHub{store: store, topics: make(map[string]*topic)}
}

func (h *serviceHub) subscribe(name string) *subscriber {
	sub := &subscriber{ch: make(chan configstore.ServiceDoc, 1)}
	h.mu.Lock()
	defer h.mu.Unlock()
	t, ok := h.topics[name]
	if !ok {
		ctx, cancel := context.WithCancel(context.Background())
		t = &topic{subs: make(map[*subscriber]struct{}), cancel: cancel, done: make(chan struct{})}
		h.topics[name] = t
		go h.follow(ctx, name, t)
	}
	t.subs[sub] = struct{}{}
	return sub
}

func (h *serviceHub) unsubscribe(name string, sub *subscriber) {
	h.mu.Lock()
	t := h.topics[name]
	delete(t.subs, sub)
	last := len(t.subs) == 0
	if last {
		delete(h.topics, name)
		t.cancel()
	}
	h.mu.Unlock()
	if last {
		<-t.done
	}
}

// follow broadcasts every version of name to the topic's subscribers
// until ctx ends, following again after a broken watch.
func (h *serviceHub) follow(ctx context.Context, name string, t *topic) {
	defer close(t.done)
	var after uint64
	for failures := 0; ctx.Err() == nil; failures++ {
		_ = h.store.FollowService(ctx, name, after, func(d configstore.ServiceDoc) error {
			failures = 0
			after = d.Meta.Version
			h.mu.Lock()
			defer h.mu.Unlock()
			for sub := range t.subs {
				select {
				case <-sub.ch:
				default:
				}
				sub.ch <- d
			}
			return nil
		})
		wait := time.NewTimer(min(50*time.Millisecond<<min(failures, 6), 2*time.Second))
		select {
		case <-ctx.Done():
		case <-wait.C:
		}
		wait.Stop()
	}
}
