package drill

// Patterns returns the drillable patterns, new ones each call (a pattern
// keeps what its Prepare found until its Cleanup), in the order `switchback
// drill all` runs them. A new pattern adds itself here.
func Patterns() []Pattern {
	return []Pattern{&flipPattern{}, &flagPattern{}, &configPattern{}, &Migration{}, &releasePattern{}}
}

// Lookup returns a new pattern named name, or nil.
func Lookup(name string) Pattern {
	for _, p := range Patterns() {
		if p.Name() == name {
			return p
		}
	}
	return nil
}

// Names lists the patterns' names.
func Names() []string {
	var out []string
	for _, p := range Patterns() {
		out = append(out, p.Name())
	}
	return out
}
