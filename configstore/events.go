package configstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Event is something an operator should hear about: a fallback, a refused
// fallback, a rollout step. Events live in etcd beside the documents, so
// every instance's admin API shows the same log.
type Event struct {
	// ID orders events: the time in nanoseconds, zero-padded, and a random
	// suffix so two instances never collide.
	ID         string    `json:"id"`
	Time       time.Time `json:"time"`
	Deployment string    `json:"deployment"`
	// Kind is fallback, fallback_refused, flag_off, rollout_started,
	// rollout_step, rollout_paused, rollout_resumed, rollout_aborted or
	// rollout_done.
	Kind     string `json:"kind"`
	Subject  string `json:"subject,omitempty"` // pool:green, flag:new_payment_flow
	Version  uint64 `json:"version,omitempty"` // the version it wrote or judged
	Instance string `json:"instance"`
	Reason   string `json:"reason"`
}

// maxEvents is how many events the store keeps; older ones are trimmed.
const maxEvents = 1000

func (s *Store) eventsPrefix() string { return s.prefix + "/events/" }

// AppendEvent stores ev, stamping its ID and time, and trims the log to the
// newest maxEvents.
func (s *Store) AppendEvent(ctx context.Context, ev Event) (Event, error) {
	if err := checkName(ev.Deployment); err != nil {
		return ev, err
	}
	ev.Time = s.now().UTC()
	var suffix [4]byte
	_, _ = rand.Read(suffix[:])
	ev.ID = fmt.Sprintf("%020d-%s", ev.Time.UnixNano(), hex.EncodeToString(suffix[:]))
	b, err := json.Marshal(ev)
	if err != nil {
		return ev, err
	}
	ctx, cancel := s.op(ctx)
	defer cancel()
	if _, err := s.kv.Put(ctx, s.eventsPrefix()+ev.ID, string(b)); err != nil {
		return ev, etcdErr("append event", err)
	}
	return ev, s.trimEvents(ctx)
}

func (s *Store) trimEvents(ctx context.Context) error {
	resp, err := s.kv.Get(ctx, s.eventsPrefix(), clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		return etcdErr("count events", err)
	}
	excess := resp.Count - maxEvents
	if excess <= 0 {
		return nil
	}
	old, err := s.kv.Get(ctx, s.eventsPrefix(), clientv3.WithPrefix(), clientv3.WithKeysOnly(),
		clientv3.WithSort(clientv3.SortByKey, clientv3.SortAscend), clientv3.WithLimit(excess))
	if err != nil {
		return etcdErr("list old events", err)
	}
	if len(old.Kvs) == 0 {
		return nil
	}
	end := string(old.Kvs[len(old.Kvs)-1].Key) + "\x00"
	if _, err := s.kv.Delete(ctx, s.eventsPrefix(), clientv3.WithRange(end)); err != nil {
		return etcdErr("trim events", err)
	}
	return nil
}

// Events lists events newest first, of one deployment or ("") of all;
// limit <= 0 means all kept.
func (s *Store) Events(ctx context.Context, deployment string, limit int) ([]Event, error) {
	evs, _, err := s.EventsAt(ctx, deployment, limit)
	return evs, err
}

// EventsAt is Events, also returning the etcd revision the list was read
// at, from which FollowEvents continues without a gap.
func (s *Store) EventsAt(ctx context.Context, deployment string, limit int) ([]Event, int64, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	resp, err := s.kv.Get(ctx, s.eventsPrefix(), clientv3.WithPrefix(),
		clientv3.WithSort(clientv3.SortByKey, clientv3.SortDescend))
	if err != nil {
		return nil, 0, etcdErr("list events", err)
	}
	var out []Event
	for _, kv := range resp.Kvs {
		var ev Event
		if err := json.Unmarshal(kv.Value, &ev); err != nil {
			continue // one damaged entry must not hide the log
		}
		if deployment != "" && ev.Deployment != deployment {
			continue
		}
		out = append(out, ev)
		if limit > 0 && len(out) == limit {
			break
		}
	}
	return out, resp.Header.Revision, nil
}

// FollowEvents calls fn for every event appended after etcd revision rev
// (0: from now on), in order, until ctx ends or the watch fails. It always
// returns a non-nil error: ctx's, or ErrUnavailable when the watch ended
// (the caller, a streaming client, may reconnect).
func (s *Store) FollowEvents(ctx context.Context, rev int64, fn func(Event)) error {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	opts := []clientv3.OpOption{clientv3.WithPrefix(), clientv3.WithFilterDelete()}
	if rev > 0 {
		opts = append(opts, clientv3.WithRev(rev+1))
	}
	for resp := range s.client.Watch(wctx, s.eventsPrefix(), opts...) {
		if err := resp.Err(); err != nil {
			return etcdErr("follow events", err)
		}
		for _, e := range resp.Events {
			var ev Event
			if json.Unmarshal(e.Kv.Value, &ev) == nil {
				fn(ev)
			}
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return fmt.Errorf("%w: the events watch ended", ErrUnavailable)
}
