package result

import "time"

// Summary is what the drill metrics export of one pattern.
type Summary struct {
	// LastSuccess is when the newest drill that passed, and was not
	// flagged, ended; zero when none did. An alert on its age says a
	// rollback path has not been proven lately.
	LastSuccess time.Time
	// Recovered is the newest recovered drill's trigger to recovered;
	// HasRecovered says whether any drill recovered.
	Recovered    time.Duration
	HasRecovered bool
}

// Ended is when r finished: its start plus its total duration.
func (r Result) Ended() time.Time {
	return r.Started.Add(time.Duration(r.Durations.Total) * time.Millisecond)
}

// Summarize reads drill results, in any order, into one Summary per
// pattern. Drills that were not applicable are left out: they ran nothing.
func Summarize(rs []Result) map[string]Summary {
	out := map[string]Summary{}
	recoveredAt := map[string]time.Time{}
	for _, r := range rs {
		if r.NotApplicable != "" || r.Pattern == "" {
			continue
		}
		s := out[r.Pattern]
		if r.Passed && !r.Flagged && r.Ended().After(s.LastSuccess) {
			s.LastSuccess = r.Ended()
		}
		if d := r.Durations.Recovered; d != nil && (!s.HasRecovered || r.Started.After(recoveredAt[r.Pattern])) {
			s.Recovered, s.HasRecovered = time.Duration(*d)*time.Millisecond, true
			recoveredAt[r.Pattern] = r.Started
		}
		out[r.Pattern] = s
	}
	return out
}
