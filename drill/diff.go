package drill

import (
	"maps"
	"slices"
	"strconv"
	"strings"
)

func sortedKeys(ms ...State) []string {
	keys := map[string]bool{}
	for _, m := range ms {
		for k := range m {
			keys[k] = true
		}
	}
	return slices.Sorted(maps.Keys(keys))
}

// lineDiff is a line diff of a and b: the common lines with two spaces,
// removed ones with "- ", added ones with "+ ". States are small (a
// document, a schema dump), so the quadratic longest common subsequence
// is fine; past 2,000 lines a side the whole texts are shown instead.
func lineDiff(a, b string) []string {
	x, y := strings.Split(a, "\n"), strings.Split(b, "\n")
	if len(x) > 2000 || len(y) > 2000 {
		return []string{"- (" + itoa(len(x)) + " lines)", "+ (" + itoa(len(y)) + " lines)"}
	}
	// lcs[i][j] is the LCS length of x[i:] and y[j:].
	lcs := make([][]int, len(x)+1)
	for i := range lcs {
		lcs[i] = make([]int, len(y)+1)
	}
	for i := len(x) - 1; i >= 0; i-- {
		for j := len(y) - 1; j >= 0; j-- {
			if x[i] == y[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	var out []string
	i, j := 0, 0
	for i < len(x) || j < len(y) {
		switch {
		case i < len(x) && j < len(y) && x[i] == y[j]:
			out = append(out, "  "+x[i])
			i++
			j++
		case i < len(x) && (j == len(y) || lcs[i+1][j] >= lcs[i][j+1]):
			out = append(out, "- "+x[i])
			i++
		default:
			out = append(out, "+ "+y[j])
			j++
		}
	}
	return out
}

func itoa(n int) string { return strconv.Itoa(n) }

func mapsKeys[V any](m map[string]V) func(func(string) bool) { return maps.Keys(m) }
