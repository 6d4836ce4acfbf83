package configstore

import (
	"context"
	"sync/atomic"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// OpCounts counts the etcd requests a Store sends (WithOpCounts): reads,
// transactions, puts and deletes. Watches and leases are not counted.
type OpCounts struct {
	Gets, Txns, Puts, Deletes atomic.Int64
}

// countingKV is a clientv3.KV that counts what passes through it.
type countingKV struct {
	clientv3.KV
	c *OpCounts
}

func (k countingKV) Get(ctx context.Context, key string, opts ...clientv3.OpOption) (*clientv3.GetResponse, error) {
	k.c.Gets.Add(1)
	return k.KV.Get(ctx, key, opts...)
}

func (k countingKV) Put(ctx context.Context, key, val string, opts ...clientv3.OpOption) (*clientv3.PutResponse, error) {
	k.c.Puts.Add(1)
	return k.KV.Put(ctx, key, val, opts...)
}

func (k countingKV) Delete(ctx context.Context, key string, opts ...clientv3.OpOption) (*clientv3.DeleteResponse, error) {
	k.c.Deletes.Add(1)
	return k.KV.Delete(ctx, key, opts...)
}

func (k countingKV) Txn(ctx context.Context) clientv3.Txn {
	k.c.Txns.Add(1)
	return k.KV.Txn(ctx)
}
