package affected

import (
	"maps"
	"slices"

	"github.com/a8e2c47e/switchback/release"
)

// recordingStatuses are the statuses of a release whose requests are recorded:
// from its start until its rollback finishes. A rollback that failed has
// not finished: the release may still serve.
var recordingStatuses = []release.Status{release.Open, release.Finished, release.RollingBack, release.RollbackFailed}

// Rules returns which of a deployment's releases record, and what: every
// release from its start until its rollback finishes, unless a later
// release (by start) of the deployment ships to the same pool, whose code
// then serves there instead. flags are the deployment's live flag
// percentages.
//
// A release's flag cohorts are the flags it raised (After above Before;
// while it is open, the live percentage above Before) that are still above
// their Before percentage: once a rollback (or anyone) lowers a flag back,
// its cohort no longer runs what the release turned on. A raised flag's
// whole "on" cohort is recorded, including the subjects that had it on
// before the release.
func Rules(releases []release.Release, flags map[string]float64) []Rule {
	var out []Rule
	for _, rel := range releases {
		if !slices.Contains(recordingStatuses, rel.Status) || superseded(rel, releases) {
			continue
		}
		ru := Rule{Release: rel.ID, Pool: rel.Pool}
		for _, name := range slices.Sorted(maps.Keys(flags)) {
			before := rel.Before.Flags[name]
			raised := flags[name] > before
			switch {
			case rel.After != nil:
				raised = raised && rel.After.Flags[name] > before
			case rel.Status != release.Open:
				raised = false // what it raised was never recorded
			}
			if raised {
				ru.Flags = append(ru.Flags, name)
			}
		}
		if ru.Pool != "" || len(ru.Flags) > 0 {
			out = append(out, ru)
		}
	}
	return out
}

// superseded reports whether a later release of rel's deployment, that
// records, ships to rel's pool.
func superseded(rel release.Release, all []release.Release) bool {
	if rel.Pool == "" {
		return false
	}
	for _, o := range all {
		if o.ID == rel.ID || o.Deployment != rel.Deployment || o.Pool != rel.Pool || !slices.Contains(recordingStatuses, o.Status) {
			continue
		}
		if o.Started.After(rel.Started) || (o.Started.Equal(rel.Started) && o.ID > rel.ID) {
			return true
		}
	}
	return false
}
