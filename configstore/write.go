package configstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/a8e2c47e/switchback/gateway"
)

// Result is what a write did, so that no caller has to read again or
// guess.
type Result struct {
	// Doc is the deployment's document after the call: the version this
	// call wrote or, when it wrote nothing, the current one.
	Doc Document
	// Prev is the version Doc replaced; when Wrote is false, Doc itself.
	Prev Document
	// Wrote reports whether this call wrote a version.
	Wrote bool
}

// WriteOption qualifies one write.
type WriteOption func(*writeOptions)

type writeOptions struct {
	leader *Leader
	pinned bool
}

// Pinned makes a write without If-Match apply to the version it reads
// first, as if that version had been given as If-Match: a lost race is a
// *ConflictError instead of a retry. Relative changes (a flip, a rollback)
// need it: applied again on top of another writer's change, two flips
// would cancel out, both reported as done.
func Pinned() WriteOption {
	return func(o *writeOptions) { o.pinned = true }
}

// Fence makes a write conditional on l still holding its leadership, in
// the same transaction: a leader deposed meanwhile (its lease expired,
// another instance elected) writes nothing and gets ErrNotLeader.
func Fence(l *Leader) WriteOption {
	return func(o *writeOptions) { o.leader = l }
}

func writeOpts(opts []WriteOption) writeOptions {
	var o writeOptions
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// Bootstrap writes cfg as version 1 of the deployment cfg.Name if it has no
// document yet, in one transaction that checks current does not exist. If
// it exists, Bootstrap changes nothing and returns the current document
// with created false; cfg is still validated first, so a rejected cfg is
// an error either way.
func (s *Store) Bootstrap(ctx context.Context, cfg gateway.Config, meta Meta) (doc Document, created bool, err error) {
	if err := checkName(cfg.Name); err != nil {
		return Document{}, false, err
	}
	if err := checkMeta(meta); err != nil {
		return Document{}, false, err
	}
	cfg = cfg.Clone()
	cfg.Version = 1
	if err := cfg.Validate(); err != nil {
		return Document{}, false, err
	}
	doc = Document{Meta: s.stamp(meta, s.now(), 1, 0, "created"), Config: cfg}
	b, err := json.Marshal(doc)
	if err != nil {
		return Document{}, false, fmt.Errorf("configstore: encode %s version 1: %w", cfg.Name, err)
	}

	ctx, cancel := s.op(ctx)
	defer cancel()
	cur := s.currentKey(cfg.Name)
	resp, err := s.kv.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(cur), "=", 0)).
		Then(clientv3.OpPut(cur, string(b)), clientv3.OpPut(s.historyKey(cfg.Name, 1), string(b))).
		Else(clientv3.OpGet(cur)).
		Commit()
	if err != nil {
		return Document{}, false, etcdErr("bootstrap "+cfg.Name, err)
	}
	if resp.Succeeded {
		return doc, true, nil
	}
	kvs := resp.Responses[0].GetResponseRange().GetKvs()
	if len(kvs) == 0 {
		return Document{}, false, fmt.Errorf("configstore: bootstrap %s: current document vanished", cfg.Name)
	}
	doc, err = decodeDocument(cur, kvs[0].Value)
	return doc, false, err
}

// Update writes the next version of a deployment: it reads the current
// version, applies mutate to a copy of its Config, validates the result and
// commits it as version+1 in one transaction that compares current's
// ModRevision with the one read. That is one read and one transaction
// when nobody else writes meanwhile.
//
// With ifVersion != 0 (If-Match) the update is a *ConflictError unless the
// current version is ifVersion, also when another writer gets there first.
// With ifVersion == 0 a lost race is retried (mutate runs again on what
// won, which the failed transaction returned) until it lands or ctx (or
// the store's timeout) ends, which is ErrUnavailable; so mutate may run
// more than once and must only edit the Config it is given.
//
// mutate returning an error aborts the update with that error. A mutation
// that changes nothing writes nothing: the Result has Wrote false and the
// current document. Changing Name is a *gateway.FieldError; Version is set
// by the store.
func (s *Store) Update(ctx context.Context, name string, ifVersion uint64, meta Meta, mutate func(*gateway.Config) error, opts ...WriteOption) (Result, error) {
	if mutate == nil {
		return Result{}, errors.New("configstore: Update needs a mutate function")
	}
	return s.Edit(ctx, name, ifVersion, meta, func(_ Document, c *gateway.Config) error { return mutate(c) }, opts...)
}

// Edit is Update with an edit that also sees the current document, for
// changes that depend on its state (such as Retained).
func (s *Store) Edit(ctx context.Context, name string, ifVersion uint64, meta Meta, edit func(cur Document, next *gateway.Config) error, opts ...WriteOption) (Result, error) {
	if edit == nil {
		return Result{}, errors.New("configstore: Edit needs an edit function")
	}
	return s.write(ctx, name, ifVersion, meta, writeOpts(opts), func(_ context.Context, cur Document) (gateway.Config, uint64, error) {
		cfg := cur.Config.Clone()
		if err := edit(cur, &cfg); err != nil {
			return gateway.Config{}, 0, err
		}
		return cfg, 0, nil
	})
}

// Restore writes a new version whose Config equals version v's, with
// RestoredFrom v and the summary "restored version v", so a diff between
// v and the new version is empty. History is never rewritten. ifVersion
// works as in Update. Restoring a Config equal to the current one writes
// nothing. A restore undoes changes: the pools it takes off traffic do not
// become rollback targets.
func (s *Store) Restore(ctx context.Context, name string, v, ifVersion uint64, meta Meta, opts ...WriteOption) (Result, error) {
	return s.write(ctx, name, ifVersion, meta, writeOpts(opts), func(ctx context.Context, _ Document) (gateway.Config, uint64, error) {
		src, err := s.version(ctx, name, v)
		if err != nil {
			return gateway.Config{}, 0, err
		}
		return src.Config, v, nil
	})
}

// Rollback restores the version before the current one (current-1, which
// retention always keeps), or is a *NotFoundError at version 1. It is
// Restore(current-1): rolling back twice returns to where the first
// rollback started, so automated callers should pass ifVersion.
func (s *Store) Rollback(ctx context.Context, name string, ifVersion uint64, meta Meta, opts ...WriteOption) (Result, error) {
	return s.write(ctx, name, ifVersion, meta, writeOpts(opts), func(ctx context.Context, cur Document) (gateway.Config, uint64, error) {
		if cur.Meta.Version < 2 {
			return gateway.Config{}, 0, &NotFoundError{Deployment: name, What: "version before " + strconv.FormatUint(cur.Meta.Version, 10)}
		}
		prev := cur.Meta.Version - 1
		src, err := s.version(ctx, name, prev)
		if err != nil {
			return gateway.Config{}, 0, err
		}
		return src.Config, prev, nil
	})
}

// nextFunc computes the Config to write from the current document, and the
// version it restores (0 for an edit). It may run more than once.
type nextFunc func(ctx context.Context, cur Document) (cfg gateway.Config, restoredFrom uint64, err error)

// write is the compare-and-swap loop behind Update, Restore and Rollback.
func (s *Store) write(ctx context.Context, name string, ifVersion uint64, meta Meta, wo writeOptions, next nextFunc) (Result, error) {
	if err := checkName(name); err != nil {
		return Result{}, err
	}
	if err := checkMeta(meta); err != nil {
		return Result{}, err
	}
	ctx, cancel := s.op(ctx)
	defer cancel()
	cur, modRev, err := s.current(ctx, name)
	if err != nil {
		return Result{}, err
	}
	if wo.pinned && ifVersion == 0 {
		ifVersion = cur.Meta.Version
	}
	for attempt := 1; ; attempt++ {
		if ifVersion != 0 && cur.Meta.Version != ifVersion {
			return Result{}, &ConflictError{Deployment: name, Want: ifVersion, Current: cur.Meta.Version}
		}
		cfg, from, err := next(ctx, cur)
		if err != nil {
			return Result{}, err
		}
		if cfg.Name != name {
			return Result{}, &gateway.FieldError{Field: "name", Value: strconv.Quote(cfg.Name),
				Want: "a document keeps its deployment's name, " + strconv.Quote(name)}
		}
		changes := Diff(cur.Config, cfg)
		if len(changes) == 0 {
			return Result{Doc: cur, Prev: cur}, nil
		}
		v := cur.Meta.Version + 1
		cfg.Version = v
		if err := cfg.Validate(); err != nil {
			return Result{}, err
		}
		summary := summarize(changes)
		if from != 0 {
			summary = "restored version " + strconv.FormatUint(from, 10)
		}
		now := s.now()
		undo := from != 0 || meta.Fallback || meta.Source == SourceGuard
		doc := Document{Meta: s.stamp(meta, now, v, from, summary), Config: cfg, Retained: retention(cur, cfg, now, !undo)}
		latest, latestRev, ok, err := s.commit(ctx, name, modRev, doc, wo.leader)
		if err != nil {
			return Result{}, err
		}
		if ok {
			return Result{Doc: doc, Prev: cur, Wrote: true}, nil
		}
		if ifVersion != 0 {
			return Result{}, &ConflictError{Deployment: name, Want: ifVersion, Current: latest.Meta.Version}
		}
		if err := sleep(ctx, conflictBackoff(attempt)); err != nil {
			return Result{}, fmt.Errorf("%w: deployment %q: lost to other writers %d times until %w", ErrUnavailable, name, attempt, err)
		}
		// Start again from what won, as the failed transaction read it; a
		// newer version written meanwhile fails the next compare.
		cur, modRev = latest, latestRev
	}
}

// commit writes doc as current and as a history key if current is still at
// modRev (and, fenced, leader still leads), and drops history beyond
// retention, in one transaction. It reports whether the compare held; if
// not, it returns the current document that made it fail, read in the same
// transaction, and its ModRevision, or ErrNotLeader.
func (s *Store) commit(ctx context.Context, name string, modRev int64, doc Document, leader *Leader) (latest Document, latestRev int64, ok bool, err error) {
	v := doc.Meta.Version
	b, err := json.Marshal(doc)
	if err != nil {
		return Document{}, 0, false, fmt.Errorf("configstore: encode %s version %d: %w", name, v, err)
	}
	cur := s.currentKey(name)
	ops := []clientv3.Op{clientv3.OpPut(cur, string(b)), clientv3.OpPut(s.historyKey(name, v), string(b))}
	if keep := uint64(s.retention); v > keep {
		ops = append(ops, clientv3.OpDelete(s.historyPrefix(name), clientv3.WithRange(s.historyKey(name, v-keep+1))))
	}
	resp, err := s.kv.Txn(ctx).
		If(leader.fence(clientv3.Compare(clientv3.ModRevision(cur), "=", modRev))...).
		Then(ops...).
		Else(leader.check(clientv3.OpGet(cur))...).
		Commit()
	if err != nil {
		// The write may or may not have happened; Get tells.
		return Document{}, 0, false, etcdErr("write "+name+" version "+strconv.FormatUint(v, 10), err)
	}
	if resp.Succeeded {
		return Document{}, 0, true, nil
	}
	if err := leader.deposed(resp); err != nil {
		return Document{}, 0, false, err
	}
	kvs := resp.Responses[0].GetResponseRange().GetKvs()
	if len(kvs) == 0 {
		return Document{}, 0, false, &NotFoundError{Deployment: name}
	}
	latest, err = decodeDocument(cur, kvs[0].Value)
	return latest, kvs[0].ModRevision, false, err
}

// stamp fills the fields of meta the store owns.
func (s *Store) stamp(meta Meta, now time.Time, v, restoredFrom uint64, summary string) Meta {
	meta.Version = v
	// UTC without a monotonic reading, so the document returned equals the
	// one read back.
	meta.Time = now.UTC().Round(0)
	meta.RestoredFrom = restoredFrom
	meta.Summary = summary
	return meta
}

// conflictBackoff spreads retrying writers out: a random wait up to 2 ms
// after the first lost race, doubling up to 100 ms. Two writers rarely
// wait at all; a crowd spreads out, and each of its writers lands in turn,
// since the one that wins a round leaves.
func conflictBackoff(attempt int) time.Duration {
	ceiling := min(2*time.Millisecond<<min(attempt-1, 6), 100*time.Millisecond)
	return rand.N(ceiling) + time.Millisecond
}

// sleep waits d or until ctx ends, returning ctx's error then.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
