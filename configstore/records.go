package configstore

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/a8e2c47e/switchback/gateway"
)

// Records are small JSON values kept beside the documents, at most one per
// deployment and kind:
//
//	<prefix>/<kind>/<name>   the record (JSON)
//
// Rollouts keep theirs as kind "rollouts". The store does not look inside
// a record: what it means is its owner's business. Every write compares
// the key's ModRevision with the one its writer read (Record.Rev), so two
// writers (the admin API and an elected driver) never overwrite each
// other.

// Record is one stored record.
type Record struct {
	// Name is the deployment the record belongs to.
	Name  string
	Value json.RawMessage
	// Rev is the key's ModRevision, which a compare-and-swap passes back
	// to PutRecord.
	Rev int64
}

// reservedKinds are the key segments the store uses itself.
var reservedKinds = map[string]bool{"deployments": true, "instances": true, "events": true,
	"services": true, "changesets": true, "summaries": true, "releases": true, "drills": true}

func checkKind(kind string) error {
	ok := kind != "" && len(kind) <= 32 && !reservedKinds[kind] &&
		!strings.ContainsFunc(kind, func(r rune) bool { return r < 'a' || r > 'z' })
	if !ok {
		return &gateway.FieldError{Field: "kind", Value: strconv.Quote(kind),
			Want: "want 1 to 32 lowercase letters other than deployments, instances, events, services, changesets, summaries and releases, like rollouts"}
	}
	return nil
}

func (s *Store) recordsPrefix(kind string) string { return s.prefix + "/" + kind + "/" }

// GetRecord returns the record of kind for deployment name, or a
// *NotFoundError when there is none.
func (s *Store) GetRecord(ctx context.Context, kind, name string) (Record, error) {
	if err := checkKind(kind); err != nil {
		return Record{}, err
	}
	if err := checkName(name); err != nil {
		return Record{}, err
	}
	ctx, cancel := s.op(ctx)
	defer cancel()
	resp, err := s.kv.Get(ctx, s.recordsPrefix(kind)+name)
	if err != nil {
		return Record{}, etcdErr("get "+kind+" record of "+name, err)
	}
	if len(resp.Kvs) == 0 {
		return Record{}, &NotFoundError{Deployment: name, What: kind + " record"}
	}
	return Record{Name: name, Value: resp.Kvs[0].Value, Rev: resp.Kvs[0].ModRevision}, nil
}

// PutRecord stores value, as JSON, as the record of kind for deployment
// name, and returns the key's new ModRevision. With ifRev 0 the record must
// not exist yet; otherwise its key must still be at ifRev. Either way a
// failed condition is a *ConflictError: someone else wrote it since it was
// read. With Fence, a deposed leader's write is ErrNotLeader.
func (s *Store) PutRecord(ctx context.Context, kind, name string, value any, ifRev int64, opts ...WriteOption) (int64, error) {
	if err := checkKind(kind); err != nil {
		return 0, err
	}
	if err := checkName(name); err != nil {
		return 0, err
	}
	b, err := json.Marshal(value)
	if err != nil {
		return 0, fmt.Errorf("configstore: encode %s record of %s: %w", kind, name, err)
	}
	leader := writeOpts(opts).leader
	ctx, cancel := s.op(ctx)
	defer cancel()
	key := s.recordsPrefix(kind) + name
	resp, err := s.kv.Txn(ctx).
		If(leader.fence(clientv3.Compare(clientv3.ModRevision(key), "=", ifRev))...).
		Then(clientv3.OpPut(key, string(b))).
		Else(leader.check()...).
		Commit()
	if err != nil {
		return 0, etcdErr("put "+kind+" record of "+name, err)
	}
	if !resp.Succeeded {
		if err := leader.deposed(resp); err != nil {
			return 0, err
		}
		return 0, &ConflictError{Deployment: name, Kind: kind}
	}
	return resp.Header.Revision, nil
}

// ListRecords returns every record of kind, sorted by deployment. A key
// that does not name a valid deployment is skipped.
func (s *Store) ListRecords(ctx context.Context, kind string) ([]Record, error) {
	if err := checkKind(kind); err != nil {
		return nil, err
	}
	ctx, cancel := s.op(ctx)
	defer cancel()
	base := s.recordsPrefix(kind)
	resp, err := s.kv.Get(ctx, base, clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByKey, clientv3.SortAscend))
	if err != nil {
		return nil, etcdErr("list "+kind+" records", err)
	}
	out := make([]Record, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		name := strings.TrimPrefix(string(kv.Key), base)
		if !gateway.ValidName(name) {
			continue
		}
		out = append(out, Record{Name: name, Value: kv.Value, Rev: kv.ModRevision})
	}
	return out, nil
}
