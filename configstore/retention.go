package configstore

import (
	"encoding/json"
	"time"

	"github.com/a8e2c47e/switchback/gateway"
)

// Retention: after a flip, the pool traffic left stays the rollback target
// for the deployment's Retain (default 24h): provisioned, health-checked,
// and protected from having its upstreams replaced. That is state the store
// keeps beside each version (Document.Retained), not content: a restore
// brings back exactly the content it names, and the state follows the
// rules below whoever writes.

// retention is the retained state of a version with content next, written
// after prev at now. A pool keeps its retention until it ends or the pool
// takes traffic again. When retainDropped, a pool whose weight drops from
// above 0 to 0 becomes the rollback target until now + Retain. A version
// that undoes a change (a restore, a rollback, a guard fallback, a rollout
// abort) passes false: the pool it leaves is the one that was wrong, and
// must not become the protected way back.
func retention(prev Document, next gateway.Config, now time.Time, retainDropped bool) map[string]time.Time {
	retained := make(map[string]time.Time)
	for pool, until := range prev.Retained {
		if _, ok := next.Pools[pool]; ok && until.After(now) && next.Weights[pool] == 0 {
			retained[pool] = until
		}
	}
	if retainDropped {
		for pool, w := range prev.Config.Weights {
			if _, ok := next.Pools[pool]; ok && w > 0 && next.Weights[pool] == 0 {
				retained[pool] = now.Add(next.Retain.Std(gateway.DefaultRetain)).UTC().Round(0)
			}
		}
	}
	if len(retained) == 0 {
		return nil
	}
	return retained
}

// RetainedUntil reports whether pool is a rollback target at now, and until
// when.
func (d Document) RetainedUntil(pool string, now time.Time) (time.Time, bool) {
	until, ok := d.Retained[pool]
	return until, ok && until.After(now)
}

// UnmarshalJSON reads a document, also as earlier releases stored it: with
// the retained pools inside the config.
func (d *Document) UnmarshalJSON(b []byte) error {
	type plain Document
	var p plain
	if err := json.Unmarshal(b, &p); err != nil {
		return err
	}
	if p.Retained == nil {
		var legacy struct {
			Config struct {
				Retained map[string]time.Time `json:"retained"`
			} `json:"config"`
		}
		if json.Unmarshal(b, &legacy) == nil {
			p.Retained = legacy.Config.Retained
		}
	}
	*d = Document(p)
	return nil
}
