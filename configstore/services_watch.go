package configstore

import (
	"context"
	"errors"
	"fmt"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// errStopFollow ends a FollowService from inside its callback.
var errStopFollow = errors.New("configstore: stop following")

// FollowService calls fn with the service's current document if its
// version is above after, then with every newer version as it is written,
// in order, each once, until ctx ends or fn returns an error. It returns
// fn's error, ctx's error, or ErrUnavailable when the watch broke (a
// streaming client reconnects with the last version it saw). A service
// that does not exist yet is waited for.
func (s *Store) FollowService(ctx context.Context, name string, after uint64, fn func(ServiceDoc) error) error {
	if err := checkName(name); err != nil {
		return err
	}
	for {
		gctx, cancel := s.op(ctx)
		doc, rev, err := s.getService(gctx, name)
		cancel()
		switch {
		case errors.Is(err, ErrNotFound):
		case err != nil:
			return err
		case doc.Meta.Version > after:
			if err := fn(doc); err != nil {
				return err
			}
			after = doc.Meta.Version
		}
		compacted, err := s.followFrom(ctx, name, rev, &after, fn)
		if !compacted {
			return err
		}
	}
}

// followFrom watches the service's current key from rev+1. It reports
// compacted true when etcd no longer has that revision: the caller reads
// again and follows from there.
func (s *Store) followFrom(ctx context.Context, name string, rev int64, after *uint64, fn func(ServiceDoc) error) (compacted bool, err error) {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	key := s.serviceCurrentKey(name)
	for wr := range s.client.Watch(wctx, key, clientv3.WithRev(rev+1), clientv3.WithFilterDelete()) {
		if err := wr.Err(); err != nil {
			if errors.Is(err, rpctypes.ErrCompacted) {
				return true, nil
			}
			return false, etcdErr("follow service "+name, err)
		}
		for _, ev := range wr.Events {
			if ev.Type != mvccpb.PUT {
				continue
			}
			d, err := decodeServiceDoc(key, ev.Kv.Value)
			if err != nil || d.Meta.Version <= *after {
				continue
			}
			if err := fn(d); err != nil {
				return false, err
			}
			*after = d.Meta.Version
		}
	}
	if err := ctx.Err(); err != nil {
		return false, err
	}
	return false, fmt.Errorf("%w: the watch of service %q ended", ErrUnavailable, name)
}

// WaitService returns the service's current document as soon as its
// version is above after: at once if it is, or when one is written. It
// returns ctx's error when ctx ends first (a long poll's timeout).
func (s *Store) WaitService(ctx context.Context, name string, after uint64) (ServiceDoc, error) {
	var got ServiceDoc
	err := s.FollowService(ctx, name, after, func(d ServiceDoc) error {
		got = d
		return errStopFollow
	})
	if errors.Is(err, errStopFollow) {
		return got, nil
	}
	return ServiceDoc{}, err
}
