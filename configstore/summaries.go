package configstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Summaries are what each instance publishes of its guard windows, one key
// per instance, so the fleet judges together:
//
//	<prefix>/summaries/<instance>   the instance's summary (JSON)
//
// Each lives under the lease of ReportApplied, so it goes when the
// instance does; a summary that stops being refreshed is the reader's to
// judge stale by its own timestamp. The store does not look inside.

func (s *Store) summariesPrefix() string { return s.prefix + "/summaries/" }

// PublishSummary writes value, as JSON, as instance's summary: one small
// write, meant once a second per instance.
func (s *Store) PublishSummary(ctx context.Context, instance string, value any) error {
	if err := checkInstance(instance); err != nil {
		return err
	}
	b, err := json.Marshal(value)
	if err != nil {
		return fmt.Errorf("configstore: encode summary of %s: %w", instance, err)
	}
	ctx, cancel := s.op(ctx)
	defer cancel()
	return s.lease.put(ctx, s.summariesPrefix()+instance, string(b))
}

// Summaries returns every live instance's summary: instance → JSON.
func (s *Store) Summaries(ctx context.Context) (map[string]json.RawMessage, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	base := s.summariesPrefix()
	resp, err := s.kv.Get(ctx, base, clientv3.WithPrefix())
	if err != nil {
		return nil, etcdErr("list summaries", err)
	}
	out := make(map[string]json.RawMessage, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		inst := strings.TrimPrefix(string(kv.Key), base)
		if checkInstance(inst) == nil {
			out[inst] = kv.Value
		}
	}
	return out, nil
}

// put writes key under the current lease, starting the keeper if needed.
// A report is also remembered (rewritten under a new lease); a summary is
// not: its writer writes it again soon. Two tries: the lease may expire
// between the keeper's last renewal and the write.
func (k *leaseKeeper) put(ctx context.Context, key, val string) error {
	k.mu.Lock()
	if k.closed {
		k.mu.Unlock()
		return errClosed
	}
	if k.ready == nil {
		k.ready = make(chan struct{})
	}
	if k.stop == nil {
		kctx, stop := context.WithCancel(k.store.client.Ctx())
		k.stop = stop
		k.done.Add(1)
		go k.keep(kctx)
	}
	k.mu.Unlock()
	for try := 0; ; try++ {
		id, err := k.wait(ctx)
		if err != nil {
			return err
		}
		_, err = k.store.kv.Put(ctx, key, val, clientv3.WithLease(id))
		if errors.Is(err, rpctypes.ErrLeaseNotFound) && try == 0 {
			k.lost(id)
			continue
		}
		if err != nil {
			return etcdErr("put "+key, err)
		}
		return nil
	}
}

// FollowSummaries calls fn with every live instance's summary, then with
// every new one as it is published, so a reader sees a peer's summary as
// soon as it is written rather than on its own next read. A summary gone
// with its instance's lease comes with a nil value. It lists again when
// the watch is lost (etcd compacted the revisions it had not seen, or was
// away), and returns only when ctx ends, with ctx's error.
func (s *Store) FollowSummaries(ctx context.Context, fn func(instance string, value []byte)) error {
	base := s.summariesPrefix()
	deliver := func(key, value []byte) {
		if inst := strings.TrimPrefix(string(key), base); checkInstance(inst) == nil {
			fn(inst, value)
		}
	}
	for failures := 0; ; failures++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		if failures > 0 {
			_ = sleep(ctx, retryBackoff(failures))
		}
		lctx, cancel := s.op(ctx)
		resp, err := s.kv.Get(lctx, base, clientv3.WithPrefix())
		cancel()
		if err != nil {
			continue
		}
		for _, kv := range resp.Kvs {
			deliver(kv.Key, kv.Value)
		}
		wctx, stop := context.WithCancel(clientv3.WithRequireLeader(ctx))
		for wr := range s.client.Watch(wctx, base, clientv3.WithPrefix(), clientv3.WithRev(resp.Header.Revision+1)) {
			if wr.Err() != nil {
				break
			}
			failures = 0
			for _, ev := range wr.Events {
				var v []byte
				if ev.Type == clientv3.EventTypePut {
					v = ev.Kv.Value
				}
				deliver(ev.Kv.Key, v)
			}
		}
		stop()
	}
}
