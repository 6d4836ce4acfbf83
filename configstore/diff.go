package configstore

import (
	"encoding/json"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/a8e2c47e/switchback/gateway"
)

// Change is one difference between two documents.
type Change struct {
	// Path of the field, like "weights.green", "pools.blue.upstreams",
	// "flags.new_payment_flow.percent", or "flags.x" when flag x was added
	// or removed as a whole.
	Path string `json:"path"`
	// From is the old value as JSON decodes it (float64, string, []any,
	// map[string]any), nil when the field was added.
	From any `json:"from"`
	// To is the new value, nil when the field was removed.
	To any `json:"to"`
}

// Diff compares two documents field by field, ignoring Version. It works on
// their JSON: objects are compared key by key, anything else (numbers,
// strings, arrays) is a value, so fields added to gateway.Config later are
// diffed with no change here. A key present on one side only is one change
// carrying the whole value ("flags.x" for a flag added or removed), except
// that a top-level field left out of the JSON (omitempty) counts as an
// empty object when the other side has an object there, so the first flag
// is "flags.x" too. Changes are sorted by path.
func Diff(from, to gateway.Config) []Change {
	a, b := configTree(from), configTree(to)
	for k, av := range a {
		if _, ok := av.(map[string]any); ok && b[k] == nil {
			b[k] = map[string]any{}
		}
	}
	for k, bv := range b {
		if _, ok := bv.(map[string]any); ok && a[k] == nil {
			a[k] = map[string]any{}
		}
	}
	var out []Change
	diffTree("", a, b, &out)
	slices.SortFunc(out, func(x, y Change) int { return strings.Compare(x.Path, y.Path) })
	return out
}

// configTree is c's JSON as maps and values, without the version.
func configTree(c gateway.Config) map[string]any {
	b, err := json.Marshal(c)
	if err != nil {
		// A Config is plain data; only a NaN weight fails to encode, and
		// Validate rejects it before any document is written.
		return map[string]any{"unencodable": err.Error()}
	}
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	delete(m, "version")
	return m
}

func diffTree(path string, a, b any, out *[]Change) {
	am, aIsObj := a.(map[string]any)
	bm, bIsObj := b.(map[string]any)
	if !aIsObj || !bIsObj {
		if !reflect.DeepEqual(a, b) {
			*out = append(*out, Change{Path: path, From: a, To: b})
		}
		return
	}
	for k, av := range am {
		p := joinPath(path, k)
		if bv, ok := bm[k]; ok {
			diffTree(p, av, bv, out)
		} else {
			*out = append(*out, Change{Path: p, From: av})
		}
	}
	for k, bv := range bm {
		if _, ok := am[k]; !ok {
			*out = append(*out, Change{Path: joinPath(path, k), To: bv})
		}
	}
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// Summaries show this many changes, then count the rest.
const summaryChanges = 6

// summarize renders changes as one line, like
// "weights.blue 100 → 0, weights.green 0 → 100, flags.x added: {"percent":5}".
func summarize(changes []Change) string {
	var sb strings.Builder
	for i, c := range changes {
		if i > 0 {
			sb.WriteString(", ")
		}
		if i == summaryChanges {
			sb.WriteString("and " + strconv.Itoa(len(changes)-i) + " more")
			break
		}
		sb.WriteString(c.Path)
		switch {
		case c.From == nil:
			sb.WriteString(" added: " + formatValue(c.To))
		case c.To == nil:
			sb.WriteString(" removed")
		default:
			sb.WriteString(" " + formatValue(c.From) + " → " + formatValue(c.To))
		}
	}
	return sb.String()
}

// maxValue is the longest value a summary shows, in characters.
const maxValue = 80

// formatValue renders a JSON value on one line: numbers as written, plain
// words bare, everything else as JSON.
func formatValue(v any) string {
	var s string
	switch v := v.(type) {
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	case string:
		if v != "" && !strings.ContainsFunc(v, func(r rune) bool { return unicode.IsSpace(r) || !unicode.IsPrint(r) || r == ',' }) {
			s = v
		} else {
			s = strconv.Quote(v)
		}
	default:
		b, err := json.Marshal(v)
		if err != nil {
			return "?"
		}
		s = string(b)
	}
	if utf8.RuneCountInString(s) > maxValue {
		r := []rune(s)
		s = string(r[:maxValue-1]) + "…"
	}
	return s
}
