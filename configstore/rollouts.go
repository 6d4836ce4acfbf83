package configstore

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/a8e2c47e/switchback/rollout"
)

// Rollouts are kept beside the documents, one key per deployment holding
// its current or last rollout:
//
//	<prefix>/rollouts/<name>   the rollout.Rollout (JSON)
//
// A deployment has at most one active (running or paused) rollout: a new
// one may only replace a finished one, and every change compares the key's
// ModRevision with the one read, so the admin API and the elected driver
// never overwrite each other.

// SourceRollout marks the versions a rollout writes: its steps and its
// rollbacks.
const SourceRollout Source = "rollout"

// RolloutSource is the Source rollout versions are written with.
const RolloutSource = SourceRollout

// StoredRollout is a rollout and the ModRevision of its key, which a
// compare-and-swap update passes back to PutRollout.
type StoredRollout struct {
	rollout.Rollout
	ModRev int64 `json:"-"`
}

// Prefix returns the prefix of every key the store uses, for keys kept
// beside it (such as the rollout driver's election).
func (s *Store) Prefix() string { return s.prefix }

func (s *Store) rolloutsPrefix() string { return s.prefix + "/rollouts/" }

func (s *Store) rolloutKey(name string) string { return s.rolloutsPrefix() + name }

// GetRollout returns a deployment's current or last rollout and the
// ModRevision of its key, or ErrNotFound when it never had one.
func (s *Store) GetRollout(ctx context.Context, name string) (rollout.Rollout, int64, error) {
	if err := checkName(name); err != nil {
		return rollout.Rollout{}, 0, err
	}
	ctx, cancel := s.op(ctx)
	defer cancel()
	key := s.rolloutKey(name)
	resp, err := s.client.Get(ctx, key)
	if err != nil {
		return rollout.Rollout{}, 0, etcdErr("get rollout of "+name, err)
	}
	if len(resp.Kvs) == 0 {
		return rollout.Rollout{}, 0, fmt.Errorf("%w: deployment %q has no rollout", ErrNotFound, name)
	}
	r, err := decodeRollout(key, resp.Kvs[0].Value)
	return r, resp.Kvs[0].ModRevision, err
}

// PutRollout stores r as its deployment's rollout, stamping Updated, and
// returns the key's new ModRevision. With ifModRev 0 it starts a rollout:
// the deployment must have none, or only a finished (aborted or done) one;
// an active one is ErrConflict. Otherwise the key must still be at
// ifModRev, or it is ErrConflict: someone else changed the rollout since
// it was read.
func (s *Store) PutRollout(ctx context.Context, r rollout.Rollout, ifModRev int64) (int64, error) {
	if err := checkName(r.Deployment); err != nil {
		return 0, err
	}
	r.Updated = s.now().UTC().Round(0)
	if r.Created.IsZero() {
		r.Created = r.Updated
	}
	b, err := json.Marshal(r)
	if err != nil {
		return 0, fmt.Errorf("configstore: encode rollout of %s: %w", r.Deployment, err)
	}
	ctx, cancel := s.op(ctx)
	defer cancel()
	key := s.rolloutKey(r.Deployment)
	if ifModRev == 0 {
		resp, err := s.client.Get(ctx, key)
		if err != nil {
			return 0, etcdErr("get rollout of "+r.Deployment, err)
		}
		if len(resp.Kvs) > 0 {
			prev, err := decodeRollout(key, resp.Kvs[0].Value)
			if err != nil {
				return 0, err
			}
			if prev.State.Active() {
				return 0, fmt.Errorf("%w: deployment %q already has rollout %s of %s, %s", ErrConflict, r.Deployment, prev.ID, prev.Target, prev.State)
			}
			// A finished rollout is replaced, if nothing changed it since.
			ifModRev = resp.Kvs[0].ModRevision
		}
	}
	resp, err := s.client.Txn(ctx).
		If(clientv3.Compare(clientv3.ModRevision(key), "=", ifModRev)).
		Then(clientv3.OpPut(key, string(b))).
		Commit()
	if err != nil {
		return 0, etcdErr("put rollout of "+r.Deployment, err)
	}
	if !resp.Succeeded {
		return 0, fmt.Errorf("%w: the rollout of %q changed meanwhile", ErrConflict, r.Deployment)
	}
	return resp.Header.Revision, nil
}

// ListRollouts returns every deployment's current or last rollout, sorted
// by deployment. A key that does not decode, or names another deployment
// than its key, is skipped rather than let it hide the others.
func (s *Store) ListRollouts(ctx context.Context) ([]StoredRollout, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	resp, err := s.client.Get(ctx, s.rolloutsPrefix(), clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByKey, clientv3.SortAscend))
	if err != nil {
		return nil, etcdErr("list rollouts", err)
	}
	out := make([]StoredRollout, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		key := string(kv.Key)
		r, err := decodeRollout(key, kv.Value)
		if err != nil || r.Deployment != strings.TrimPrefix(key, s.rolloutsPrefix()) {
			continue
		}
		out = append(out, StoredRollout{Rollout: r, ModRev: kv.ModRevision})
	}
	return out, nil
}

func decodeRollout(key string, b []byte) (rollout.Rollout, error) {
	var r rollout.Rollout
	if err := json.Unmarshal(b, &r); err != nil {
		return rollout.Rollout{}, fmt.Errorf("configstore: decode %s: %w", key, err)
	}
	return r, nil
}
