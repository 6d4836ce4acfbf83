package configstore

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strconv"
	"strings"
	"sync"
	"unicode"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/a8e2c47e/switchback/gateway"
)

// leaseTTL is how long, in seconds, an instance's reports outlive it.
const leaseTTL = 10

// MaxInstance is the longest instance name ReportApplied accepts.
const MaxInstance = 253

func checkInstance(instance string) error {
	bad := func(r rune) bool { return r == '/' || unicode.IsSpace(r) || !unicode.IsPrint(r) }
	if instance == "" || len(instance) > MaxInstance || strings.ContainsFunc(instance, bad) {
		return &gateway.FieldError{Field: "instance", Value: strconv.Quote(instance),
			Want: "want 1 to " + strconv.Itoa(MaxInstance) + " printable characters without spaces or '/', like host:9180"}
	}
	return nil
}

func (s *Store) instancesPrefix() string { return s.prefix + "/instances/" }

func (s *Store) appliedKey(instance, name string) string {
	return s.instancesPrefix() + instance + "/" + name
}

// leaseKeeper holds the lease ReportApplied writes under, and what was
// reported, to write it again under a new lease.
type leaseKeeper struct {
	store *Store

	// writeMu serialises writes of instance keys, so that re-writing the
	// reports under a new lease never overwrites a newer report.
	writeMu sync.Mutex

	// done waits for the keeper goroutine.
	done sync.WaitGroup

	// mu protects the fields below.
	mu      sync.Mutex
	id      clientv3.LeaseID     // 0 while there is none
	ready   chan struct{}        // closed when id != 0
	reports map[[2]string]uint64 // {instance, deployment} → version
	kept    map[string]string    // other keys to rewrite under a new lease (keepPut)
	stop    context.CancelFunc   // nil until the keeper goroutine starts
	closed  bool
}

// ReportApplied records that instance runs version of deployment name. The
// record lives under a lease of about 10 seconds that the store keeps
// alive, so it disappears when the instance does. If the lease is lost
// (etcd was away for longer than that), the store takes a new one and
// writes every report again. Close revokes the lease.
func (s *Store) ReportApplied(ctx context.Context, instance, name string, version uint64) error {
	if err := checkInstance(instance); err != nil {
		return err
	}
	if err := checkName(name); err != nil {
		return err
	}
	ctx, cancel := s.op(ctx)
	defer cancel()
	return s.lease.report(ctx, instance, name, version)
}

// Applied returns the version each live instance reported for deployment
// name: instance → version. An unknown deployment has no reports.
func (s *Store) Applied(ctx context.Context, name string) (map[string]uint64, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	ctx, cancel := s.op(ctx)
	defer cancel()
	base := s.instancesPrefix()
	resp, err := s.kv.Get(ctx, base, clientv3.WithPrefix())
	if err != nil {
		return nil, etcdErr("applied versions of "+name, err)
	}
	out := make(map[string]uint64)
	for _, kv := range resp.Kvs {
		instance, dep, ok := strings.Cut(strings.TrimPrefix(string(kv.Key), base), "/")
		if !ok || dep != name {
			continue
		}
		if v, err := strconv.ParseUint(string(kv.Value), 10, 64); err == nil {
			out[instance] = v
		}
	}
	return out, nil
}

// AppliedReport is one instance's report of the version of a deployment
// it runs.
type AppliedReport struct {
	Instance string
	Version  uint64
}

// WatchApplied follows what instances report for deployment name
// (ReportApplied, and the re-writes under a new lease): every report
// written after WatchApplied returns arrives on the channel, in order. The
// channel closes when ctx ends or the watch breaks; a goroutine of the
// store feeds it until then, so the caller reads it or ends ctx.
func (s *Store) WatchApplied(ctx context.Context, name string) (<-chan AppliedReport, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	base := s.instancesPrefix()
	// The revision read here is where "after WatchApplied returns" starts.
	gctx, cancel := s.op(ctx)
	resp, err := s.kv.Get(gctx, base, clientv3.WithPrefix(), clientv3.WithCountOnly())
	cancel()
	if err != nil {
		return nil, etcdErr("applied versions of "+name, err)
	}
	wch := s.client.Watch(ctx, base, clientv3.WithPrefix(), clientv3.WithRev(resp.Header.Revision+1), clientv3.WithFilterDelete())
	out := make(chan AppliedReport)
	go func() {
		defer close(out)
		for wr := range wch {
			for _, ev := range wr.Events {
				instance, dep, ok := strings.Cut(strings.TrimPrefix(string(ev.Kv.Key), base), "/")
				v, err := strconv.ParseUint(string(ev.Kv.Value), 10, 64)
				if !ok || dep != name || err != nil {
					continue
				}
				select {
				case out <- AppliedReport{Instance: instance, Version: v}:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return out, nil
}

// Close stops keeping the lease of ReportApplied alive and revokes it, so
// this store's reports disappear at once, then closes what Dial opened
// (the client, then an embedded etcd it started). On a Store from New the
// other methods keep working; ReportApplied fails after Close.
func (s *Store) Close() error {
	err := s.lease.close()
	s.owned.once.Do(func() {
		if c := s.owned.client; c != nil {
			err = errors.Join(err, c.Close())
		}
		if e := s.owned.embedded; e != nil {
			err = errors.Join(err, e.Close())
		}
	})
	return err
}

// errClosed is ReportApplied after Close.
var errClosed = errors.New("configstore: store closed")

// report writes one report under the current lease, waiting for the
// keeper to grant one if there is none.
func (k *leaseKeeper) report(ctx context.Context, instance, name string, version uint64) error {
	k.writeMu.Lock()
	defer k.writeMu.Unlock()

	k.mu.Lock()
	if k.closed {
		k.mu.Unlock()
		return errClosed
	}
	if k.reports == nil {
		k.reports = make(map[[2]string]uint64)
	}
	k.reports[[2]string{instance, name}] = version
	k.mu.Unlock()
	return k.put(ctx, k.store.appliedKey(instance, name), strconv.FormatUint(version, 10))
}

// wait returns the current lease, waiting for one until ctx ends.
func (k *leaseKeeper) wait(ctx context.Context) (clientv3.LeaseID, error) {
	for {
		k.mu.Lock()
		id, ready, closed := k.id, k.ready, k.closed
		k.mu.Unlock()
		if closed {
			return 0, errClosed
		}
		if id != 0 {
			return id, nil
		}
		select {
		case <-ready:
		case <-ctx.Done():
			return 0, fmt.Errorf("%w: waiting for a lease: %w", ErrUnavailable, ctx.Err())
		}
	}
}

// keep grants a lease, writes every report under it and keeps it alive;
// when the lease is lost it starts over, until ctx ends.
func (k *leaseKeeper) keep(ctx context.Context) {
	defer k.done.Done()
	for failures := 0; ctx.Err() == nil; {
		gctx, cancel := k.store.op(ctx)
		resp, err := k.store.client.Grant(gctx, leaseTTL)
		cancel()
		var alive <-chan *clientv3.LeaseKeepAliveResponse
		if err == nil {
			alive, err = k.store.client.KeepAlive(ctx, resp.ID)
		}
		if err != nil {
			failures++
			_ = sleep(ctx, retryBackoff(failures))
			continue
		}
		failures = 0
		k.granted(resp.ID)
		k.rewrite(ctx, resp.ID)
		for range alive {
			// Drained until the lease expires or ctx ends; the client
			// warns when nobody reads its responses.
		}
		k.lost(resp.ID)
	}
}

func (k *leaseKeeper) granted(id clientv3.LeaseID) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.id = id
	close(k.ready)
}

// lost forgets lease id, if it is still the current one.
func (k *leaseKeeper) lost(id clientv3.LeaseID) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.id == id {
		k.id = 0
		k.ready = make(chan struct{})
	}
}

// rewrite writes every report under a new lease, best effort: a report
// that fails here is written again by the instance's next ReportApplied.
func (k *leaseKeeper) rewrite(ctx context.Context, id clientv3.LeaseID) {
	k.writeMu.Lock()
	defer k.writeMu.Unlock()
	k.mu.Lock()
	reports := make(map[[2]string]uint64, len(k.reports))
	for key, v := range k.reports {
		reports[key] = v
	}
	kept := maps.Clone(k.kept)
	k.mu.Unlock()
	for key, v := range kept {
		pctx, cancel := k.store.op(ctx)
		_, err := k.store.kv.Put(pctx, key, v, clientv3.WithLease(id))
		cancel()
		if err != nil {
			return
		}
	}
	for key, v := range reports {
		pctx, cancel := k.store.op(ctx)
		_, err := k.store.kv.Put(pctx, k.store.appliedKey(key[0], key[1]), strconv.FormatUint(v, 10), clientv3.WithLease(id))
		cancel()
		if err != nil {
			return
		}
	}
}

func (k *leaseKeeper) close() error {
	k.mu.Lock()
	if k.closed {
		k.mu.Unlock()
		return nil
	}
	k.closed = true
	stop, id := k.stop, k.id
	k.mu.Unlock()
	if stop == nil {
		return nil
	}
	stop()
	k.done.Wait()
	if id == 0 {
		return nil
	}
	ctx, cancel := k.store.op(context.Background())
	defer cancel()
	if _, err := k.store.client.Revoke(ctx, id); err != nil && !errors.Is(err, rpctypes.ErrLeaseNotFound) {
		return etcdErr("revoke lease", err)
	}
	return nil
}
