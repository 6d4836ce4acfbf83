package configstore

import (
	"context"
	"fmt"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// Leadership: one instance among those sharing a store does a job, such as
// driving rollouts. The election is etcd's (concurrency.Election) under
//
//	<prefix>/<role>-leader
//
// tied to a lease: a leader that dies loses the role when the lease
// expires, one that resigns at once. Writes made with Fence(leader) check
// in their transaction that the leader's key is still the one it created,
// so a leader that was deposed without noticing (paused, partitioned)
// writes nothing.

// defaultLeaseTTL is how long leadership outlives a leader that died
// without resigning.
const defaultLeaseTTL = 5 * time.Second

// resignTimeout bounds the revoke of a resigning leader's lease; if etcd
// does not answer, the lease expires by itself.
const resignTimeout = time.Second

// LeadOption configures Lead.
type LeadOption func(*leadOptions)

type leadOptions struct {
	ttl time.Duration
}

// LeaseTTL sets how long leadership outlives a leader that died without
// resigning: the longest the job waits for another instance to take it
// over. Default 5s; at least 1s.
func LeaseTTL(d time.Duration) LeadOption {
	return func(o *leadOptions) { o.ttl = max(d, time.Second) }
}

// Leader is the holder of a role won with Lead.
type Leader struct {
	store   *Store
	session *concurrency.Session
	key     string // the election key this leader created
	rev     int64  // its CreateRevision
	cancel  context.CancelFunc
	once    sync.Once
}

// Lead campaigns for role (a name like "rollout", which makes the key
// <prefix>/rollout-leader) as candidate (this instance's name) and
// returns once elected, or with ctx's error, or ErrUnavailable. The
// leadership ends when ctx ends, when the lease is lost (Done), or on
// Resign, which the caller must call in every case.
func (s *Store) Lead(ctx context.Context, role, candidate string, opts ...LeadOption) (*Leader, error) {
	if !validRole(role) {
		return nil, fmt.Errorf("configstore: role %q: want lowercase letters and digits, like rollout", role)
	}
	o := leadOptions{ttl: defaultLeaseTTL}
	for _, opt := range opts {
		opt(&o)
	}
	lctx, cancel := context.WithCancel(ctx)
	// The election gets a client sharing s.client's connections whose
	// context ends with lctx: a cancelled Campaign resigns with the
	// client's context, and that must not wait on an unreachable etcd.
	cli := clientv3.NewCtxClient(lctx, clientv3.WithZapLogger(quietLogger()))
	cli.KV, cli.Lease, cli.Watcher = s.kv, s.client.Lease, s.client.Watcher
	session, err := concurrency.NewSession(cli, concurrency.WithTTL(int(o.ttl/time.Second)))
	if err != nil {
		cancel()
		return nil, etcdErr("lead "+role+": session", err)
	}
	l := &Leader{store: s, session: session, cancel: cancel}
	election := concurrency.NewElection(session, s.prefix+"/"+role+"-leader")
	if err := election.Campaign(lctx, candidate); err != nil {
		l.Resign()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, etcdErr("lead "+role+": campaign", err)
	}
	l.key, l.rev = election.Key(), election.Rev()
	return l, nil
}

func validRole(role string) bool {
	if role == "" || len(role) > 32 {
		return false
	}
	for _, r := range role {
		if (r < 'a' || r > 'z') && (r < '0' || r > '9') {
			return false
		}
	}
	return true
}

// Done is closed when the leadership has ended: the lease was lost, the
// context given to Lead ended, or Resign was called.
func (l *Leader) Done() <-chan struct{} { return l.session.Done() }

// Resign ends the leadership and revokes its lease, which deletes the
// election key so another instance takes over at once rather than after
// the TTL. It is safe to call more than once and after Done.
func (l *Leader) Resign() {
	l.once.Do(func() {
		// The session's own Close would revoke with its (possibly
		// cancelled) context; a fresh one bounds the revoke instead.
		l.session.Orphan()
		l.cancel()
		ctx, cancel := context.WithTimeout(context.Background(), resignTimeout)
		defer cancel()
		// A failure leaves the lease to expire by itself within the TTL.
		_, _ = l.store.client.Revoke(ctx, l.session.Lease())
	})
}

// fence adds the leader's check to a write's compares; a nil leader adds
// nothing.
func (l *Leader) fence(cmps ...clientv3.Cmp) []clientv3.Cmp {
	if l == nil {
		return cmps
	}
	return append(cmps, clientv3.Compare(clientv3.CreateRevision(l.key), "=", l.rev))
}

// check adds, to a fenced write's else branch, the read that tells why the
// compare failed.
func (l *Leader) check(ops ...clientv3.Op) []clientv3.Op {
	if l == nil {
		return ops
	}
	return append(ops, clientv3.OpGet(l.key))
}

// deposed returns ErrNotLeader if a failed fenced transaction failed
// because the leader's key is gone or was created again by someone else.
// The leader's read is the last response of the else branch.
func (l *Leader) deposed(resp *clientv3.TxnResponse) error {
	if l == nil || len(resp.Responses) == 0 {
		return nil
	}
	kvs := resp.Responses[len(resp.Responses)-1].GetResponseRange().GetKvs()
	if len(kvs) == 0 || kvs[0].CreateRevision != l.rev {
		return fmt.Errorf("%w: the lease behind %s has ended", ErrNotLeader, l.key)
	}
	return nil
}
