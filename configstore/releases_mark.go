package configstore

import (
	"context"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// ReleasesMark changes whenever a release record is written or deleted:
// a reader that polls the releases compares marks, one small read, and
// lists them again only when the mark moved.
type ReleasesMark struct {
	// Count is the number of release records; LastWrite the highest
	// ModRevision among them. A write raises LastWrite; a deletion
	// lowers Count (or LastWrite, when the newest write goes).
	Count     int64
	LastWrite int64
}

// ReleasesMark reads the releases' mark: the key written last, without
// its value, and the count.
func (s *Store) ReleasesMark(ctx context.Context) (ReleasesMark, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	resp, err := s.kv.Get(ctx, s.releasesPrefix(), clientv3.WithPrefix(), clientv3.WithKeysOnly(),
		clientv3.WithSort(clientv3.SortByModRevision, clientv3.SortDescend), clientv3.WithLimit(1))
	if err != nil {
		return ReleasesMark{}, etcdErr("releases mark", err)
	}
	m := ReleasesMark{Count: resp.Count}
	if len(resp.Kvs) > 0 {
		m.LastWrite = resp.Kvs[0].ModRevision
	}
	return m, nil
}
