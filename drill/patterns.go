package drill

// Patterns lists the drillable patterns, in the order `switchback drill
// all` runs them. A new pattern adds itself here.
func Patterns() []Pattern {
	return []Pattern{}
}

// Lookup returns the pattern named name, or nil.
func Lookup(name string) Pattern {
	for _, p := range Patterns() {
		if p.Name() == name {
			return p
		}
	}
	return nil
}
