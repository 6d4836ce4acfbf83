package configstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/a8e2c47e/switchback/gateway"
)

// Drill results are kept, newest 1,000, under their own keys:
//
//	<prefix>/drills/<id>   one drill's result (JSON, package drill/result)
//
// The ID orders them by time, as events are ordered. The store does not
// look inside a result beyond checking it is a JSON object: its meaning
// is the drill's.

// maxDrills is how many drill results the store keeps.
const maxDrills = 1000

// maxDrillSize bounds one stored result.
const maxDrillSize = 256 << 10

func (s *Store) drillsPrefix() string { return s.prefix + "/drills/" }

// AppendDrill stores one drill result and returns its ID; the log is
// trimmed to the newest maxDrills.
func (s *Store) AppendDrill(ctx context.Context, result json.RawMessage) (string, error) {
	var obj map[string]json.RawMessage
	if len(result) > maxDrillSize || json.Unmarshal(result, &obj) != nil {
		return "", &gateway.FieldError{Field: "drill", Value: strconv.Itoa(len(result)) + " bytes",
			Want: "want one drill result, a JSON object of at most " + strconv.Itoa(maxDrillSize>>10) + " KiB"}
	}
	var suffix [4]byte
	_, _ = rand.Read(suffix[:])
	id := fmt.Sprintf("%020d-%s", s.now().UTC().UnixNano(), hex.EncodeToString(suffix[:]))
	ctx, cancel := s.op(ctx)
	defer cancel()
	if _, err := s.kv.Put(ctx, s.drillsPrefix()+id, string(result)); err != nil {
		return "", etcdErr("append drill", err)
	}
	resp, err := s.kv.Get(ctx, s.drillsPrefix(), clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		return id, etcdErr("count drills", err)
	}
	if excess := resp.Count - maxDrills; excess > 0 {
		old, err := s.kv.Get(ctx, s.drillsPrefix(), clientv3.WithPrefix(), clientv3.WithKeysOnly(),
			clientv3.WithSort(clientv3.SortByKey, clientv3.SortAscend), clientv3.WithLimit(excess))
		if err != nil {
			return id, etcdErr("list old drills", err)
		}
		if n := len(old.Kvs); n > 0 {
			end := string(old.Kvs[n-1].Key) + "\x00"
			if _, err := s.kv.Delete(ctx, s.drillsPrefix(), clientv3.WithRange(end)); err != nil {
				return id, etcdErr("trim drills", err)
			}
		}
	}
	return id, nil
}

// Drill is one stored drill result.
type Drill struct {
	ID     string
	Result json.RawMessage
}

// Drills lists stored drill results, newest first; limit <= 0 means all
// kept.
func (s *Store) Drills(ctx context.Context, limit int) ([]Drill, error) {
	kvs, err := s.newest(ctx, s.drillsPrefix(), limit, "list drills")
	if err != nil {
		return nil, err
	}
	out := make([]Drill, 0, len(kvs))
	for _, kv := range kvs {
		out = append(out, Drill{ID: string(kv.Key[len(s.drillsPrefix()):]), Result: kv.Value})
	}
	return out, nil
}

// newest reads the keys under prefix whose names sort by time, newest
// first, at most limit of them (all when limit <= 0).
func (s *Store) newest(ctx context.Context, prefix string, limit int, what string) ([]*mvccpb.KeyValue, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	opts := []clientv3.OpOption{clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByKey, clientv3.SortDescend)}
	if limit > 0 {
		opts = append(opts, clientv3.WithLimit(int64(limit)))
	}
	resp, err := s.kv.Get(ctx, prefix, opts...)
	if err != nil {
		return nil, etcdErr(what, err)
	}
	return resp.Kvs, nil
}
