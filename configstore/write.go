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

// maxAttempts is how many times a write without If-Match reads, computes
// and tries to commit before it gives up with ErrConflict.
const maxAttempts = 10

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
	doc = Document{Meta: s.stamp(meta, 1, 0, "created"), Config: cfg}
	b, err := json.Marshal(doc)
	if err != nil {
		return Document{}, false, fmt.Errorf("configstore: encode %s version 1: %w", cfg.Name, err)
	}

	ctx, cancel := s.op(ctx)
	defer cancel()
	cur := s.currentKey(cfg.Name)
	resp, err := s.client.Txn(ctx).
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
// ModRevision with the one read.
//
// With ifVersion != 0 (If-Match) the update fails with ErrConflict unless
// the current version is ifVersion, and a lost compare-and-swap is
// ErrConflict too. With ifVersion == 0 a lost race is retried (read again,
// mutate again) a few times before ErrConflict, so mutate may run more than
// once and must only edit the Config it is given.
//
// mutate returning an error aborts the update with that error. A mutation
// that changes nothing writes nothing: Update returns the current document
// as it is, with its version, so callers can compare versions to tell.
// Changing Name is a *gateway.FieldError; Version is set by the store.
func (s *Store) Update(ctx context.Context, name string, ifVersion uint64, meta Meta, mutate func(*gateway.Config) error) (Document, error) {
	if mutate == nil {
		return Document{}, errors.New("configstore: Update needs a mutate function")
	}
	return s.write(ctx, name, ifVersion, meta, func(_ context.Context, cur Document) (gateway.Config, uint64, error) {
		cfg := cur.Config.Clone()
		if err := mutate(&cfg); err != nil {
			return gateway.Config{}, 0, err
		}
		return cfg, 0, nil
	})
}

// Restore writes a new version whose Config equals version v's, with
// RestoredFrom v and the summary "restored version v". History is never
// rewritten. ifVersion works as in Update. Restoring a Config equal to the
// current one writes nothing and returns the current document.
func (s *Store) Restore(ctx context.Context, name string, v, ifVersion uint64, meta Meta) (Document, error) {
	return s.write(ctx, name, ifVersion, meta, func(ctx context.Context, _ Document) (gateway.Config, uint64, error) {
		src, err := s.version(ctx, name, v)
		if err != nil {
			return gateway.Config{}, 0, err
		}
		return src.Config, v, nil
	})
}

// Rollback restores the version before the current one (current-1, which
// retention always keeps), or returns ErrNotFound at version 1. It is
// Restore(current-1): rolling back twice returns to where the first
// rollback started, so automated callers should pass ifVersion.
func (s *Store) Rollback(ctx context.Context, name string, ifVersion uint64, meta Meta) (Document, error) {
	return s.write(ctx, name, ifVersion, meta, func(ctx context.Context, cur Document) (gateway.Config, uint64, error) {
		if cur.Meta.Version < 2 {
			return gateway.Config{}, 0, fmt.Errorf("%w: deployment %q has no version before %d", ErrNotFound, name, cur.Meta.Version)
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
func (s *Store) write(ctx context.Context, name string, ifVersion uint64, meta Meta, next nextFunc) (Document, error) {
	if err := checkName(name); err != nil {
		return Document{}, err
	}
	if err := checkMeta(meta); err != nil {
		return Document{}, err
	}
	ctx, cancel := s.op(ctx)
	defer cancel()
	cur, modRev, err := s.current(ctx, name)
	if err != nil {
		return Document{}, err
	}
	for attempt := 1; ; attempt++ {
		if ifVersion != 0 && cur.Meta.Version != ifVersion {
			return Document{}, fmt.Errorf("%w: deployment %q is at version %d, not %d", ErrConflict, name, cur.Meta.Version, ifVersion)
		}
		cfg, from, err := next(ctx, cur)
		if err != nil {
			return Document{}, err
		}
		if cfg.Name != name {
			return Document{}, &gateway.FieldError{Field: "name", Value: strconv.Quote(cfg.Name),
				Want: "a document keeps its deployment's name, " + strconv.Quote(name)}
		}
		// Every writer maintains the rollback targets the same way. A pool
		// a fallback takes off traffic failed: it is no way back.
		gateway.Transition(&cur.Config, &cfg, s.now(), !meta.Fallback && meta.Source != SourceGuard)
		changes := Diff(cur.Config, cfg)
		if len(changes) == 0 {
			return cur, nil
		}
		v := cur.Meta.Version + 1
		cfg.Version = v
		if err := cfg.Validate(); err != nil {
			return Document{}, err
		}
		summary := summarize(changes)
		if from != 0 {
			summary = "restored version " + strconv.FormatUint(from, 10)
		}
		doc := Document{Meta: s.stamp(meta, v, from, summary), Config: cfg}
		latest, latestRev, ok, err := s.commit(ctx, name, modRev, doc)
		if err != nil {
			return Document{}, err
		}
		if ok {
			return doc, nil
		}
		if ifVersion != 0 {
			return Document{}, fmt.Errorf("%w: deployment %q changed while writing version %d", ErrConflict, name, v)
		}
		if attempt == maxAttempts {
			return Document{}, fmt.Errorf("%w: deployment %q: lost to other writers %d times", ErrConflict, name, attempt)
		}
		if err := sleep(ctx, conflictBackoff(attempt)); err != nil {
			return Document{}, fmt.Errorf("%w: deployment %q: lost to other writers until %w", ErrConflict, name, err)
		}
		// Start again from what won, as the failed transaction read it; a
		// newer version written meanwhile fails the next compare.
		cur, modRev = latest, latestRev
	}
}

// commit writes doc as current and as a history key if current is still at
// modRev, and drops history beyond retention, in one transaction. It
// reports whether the compare held; if not, it returns the current document
// that made it fail, read in the same transaction, and its ModRevision.
func (s *Store) commit(ctx context.Context, name string, modRev int64, doc Document) (latest Document, latestRev int64, ok bool, err error) {
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
	resp, err := s.client.Txn(ctx).
		If(clientv3.Compare(clientv3.ModRevision(cur), "=", modRev)).
		Then(ops...).
		Else(clientv3.OpGet(cur)).
		Commit()
	if err != nil {
		// The write may or may not have happened; Get tells.
		return Document{}, 0, false, etcdErr("write "+name+" version "+strconv.FormatUint(v, 10), err)
	}
	if resp.Succeeded {
		return Document{}, 0, true, nil
	}
	kvs := resp.Responses[0].GetResponseRange().GetKvs()
	if len(kvs) == 0 {
		return Document{}, 0, false, fmt.Errorf("%w: deployment %q", ErrNotFound, name)
	}
	latest, err = decodeDocument(cur, kvs[0].Value)
	return latest, kvs[0].ModRevision, false, err
}

// stamp fills the fields of meta the store owns.
func (s *Store) stamp(meta Meta, v, restoredFrom uint64, summary string) Meta {
	meta.Version = v
	// UTC without a monotonic reading, so the document returned equals the
	// one read back.
	meta.Time = s.now().UTC().Round(0)
	meta.RestoredFrom = restoredFrom
	meta.Summary = summary
	return meta
}

// conflictBackoff spreads retrying writers out: a random wait up to 2 ms
// after the first lost race, doubling up to 250 ms. Two writers rarely
// wait at all; a crowd spreads over about half a second, and most of it
// ends with ErrConflict, as optimistic concurrency does.
func conflictBackoff(attempt int) time.Duration {
	ceiling := min(2*time.Millisecond<<min(attempt-1, 8), 250*time.Millisecond)
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
