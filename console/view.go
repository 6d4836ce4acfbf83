package console

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html/template"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/a8e2c47e/switchback/admin"
	"github.com/a8e2c47e/switchback/configstore"
	"github.com/a8e2c47e/switchback/gateway"
	"github.com/a8e2c47e/switchback/guard"
)

// page is what every template gets: the layout's fields and the page's
// own Data.
type page struct {
	Title string
	Nav   string // the current navigation entry
	User  *session
	// Live names the deployment the page follows ("*" for all); empty: the
	// page does not update itself.
	Live string
	// LiveRelease adds a release's status and steps ("*": every
	// release's status) to what the page follows.
	LiveRelease string
	// Refresh, when set, makes the page load this console URL again at
	// once.
	Refresh string
	Error   string
	Flash   string
	Data    any
}

// pageNames are the templates besides the layout.
var pageNames = []string{"signin", "overview", "deployment", "history", "diff", "confirm", "later", "error", "releases", "release", "rollback", "drills"}

var funcs = template.FuncMap{
	"pct":     func(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) + "%" },
	"num":     func(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) },
	"rate":    func(f float64) string { return strconv.FormatFloat(f, 'f', 2, 64) + "%" },
	"dur":     func(d gateway.Duration) string { return time.Duration(d).Round(time.Millisecond).String() },
	"when":    func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05Z") },
	"iso":     func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
	"join":    strings.Join,
	"add":     func(a, b int) int { return a + b },
	"isZero":  func(t time.Time) bool { return t.IsZero() },
	"version": func(v uint64) string { return strconv.FormatUint(v, 10) },
}

func parsePages() (map[string]*template.Template, error) {
	out := make(map[string]*template.Template, len(pageNames))
	for _, name := range pageNames {
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("console: template %s: %w", name, err)
		}
		out[name] = t
	}
	return out, nil
}

// render writes a page; a template error is the console's bug and is
// logged, the status being out already.
func (c *Console) render(w http.ResponseWriter, r *http.Request, status int, name string, p *page) {
	var buf bytes.Buffer
	if err := c.pages[name].Execute(&buf, p); err != nil {
		c.log.Error("console: render " + name + ": " + err.Error())
		http.Error(w, "the console could not render this page", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// fail answers with the error page.
func (c *Console) fail(w http.ResponseWriter, r *http.Request, s *session, status int, msg string) {
	c.render(w, r, status, "error", &page{Title: http.StatusText(status), User: s, Error: msg,
		Data: struct{ Status int }{status}})
}

// bar is one pool's share of the weights bar.
type bar struct {
	Pool   string
	Weight float64
	X      float64 // percent from the left
	Class  string
}

// poolClass colours a pool: blue and green as named, others from a
// palette. Every colour has 3:1 contrast against the page (WCAG 1.4.11).
func poolClass(name string, i int) string {
	switch name {
	case "blue", "green":
		return "pool-" + name
	}
	return "pool-" + strconv.Itoa(i%4)
}

func bars(d admin.Deployment) []bar {
	var out []bar
	x := 0.0
	for i, name := range slices.Sorted(maps.Keys(d.Pools)) {
		w := d.Weights[name]
		out = append(out, bar{Pool: name, Weight: w, X: x, Class: poolClass(name, i)})
		x += w
	}
	return out
}

// instance is one gateway instance's applied version.
type instance struct {
	Name    string
	Version uint64
	Agrees  bool
}

func instances(d admin.Deployment) (out []instance, agree bool) {
	agree = true
	for _, name := range slices.Sorted(maps.Keys(d.Instances)) {
		v := d.Instances[name]
		out = append(out, instance{Name: name, Version: v, Agrees: v == d.Version})
		agree = agree && v == d.Version
	}
	return out, agree
}

// deploymentView is a deployment with what its pages show precomputed.
type deploymentView struct {
	admin.Deployment
	Bars      []bar
	BarLabel  string
	Instances []instance
	Agree     bool
	FlagNames []string
	PoolNames []string
	// CanFlip: exactly two pools with unequal weights, which the API's
	// flip needs; otherwise the page says why Flip is not offered.
	CanFlip bool
	FlipTo  string
	FlipWhy string
	// SendTo are the pools offered "All traffic to P" when traffic is
	// split, which the API's flip refuses as ambiguous.
	SendTo  []string
	StoreOK bool
	Prev    uint64 // the version Roll back restores
}

func viewOf(d admin.Deployment) deploymentView {
	v := deploymentView{Deployment: d, Bars: bars(d), StoreOK: d.Store == "" || d.Store == "ok"}
	var parts []string
	for _, b := range v.Bars {
		parts = append(parts, b.Pool+" "+strconv.FormatFloat(b.Weight, 'f', -1, 64)+"%")
	}
	v.BarLabel = "Traffic: " + strings.Join(parts, ", ")
	v.Instances, v.Agree = instances(d)
	if d.Version > 1 {
		v.Prev = d.Version - 1
	}
	v.FlagNames = slices.Sorted(maps.Keys(d.Flags))
	v.PoolNames = slices.Sorted(maps.Keys(d.Pools))
	if to, err := flipTarget(d.Config()); err == nil {
		v.CanFlip, v.FlipTo = true, to
	} else {
		v.FlipWhy = err.Error()
		if len(d.Pools) >= 2 {
			v.SendTo = slices.Sorted(maps.Keys(d.Pools))
		}
	}
	return v
}

// flipTarget is the pool the API's flip sends all traffic to: of exactly
// two pools, the one without traffic while the other has it all. From a
// split the API refuses (promote or roll back is the operator's call), and
// the page offers "All traffic to P" instead. Only the dialog's preview
// uses it; the write is the API's flip.
func flipTarget(c gateway.Config) (string, error) {
	if len(c.Pools) != 2 {
		return "", fmt.Errorf("Flip needs exactly two pools; this deployment has %d", len(c.Pools))
	}
	names := slices.Sorted(maps.Keys(c.Pools))
	a, b := names[0], names[1]
	switch {
	case c.Weights[a] == 100:
		return b, nil
	case c.Weights[b] == 100:
		return a, nil
	}
	return "", fmt.Errorf("Traffic is split (%s %g%%, %s %g%%): Flip needs all of it on one pool, so say where it goes", a, c.Weights[a], b, c.Weights[b])
}

// poolRow is a pool on the deployment page.
type poolRow struct {
	Name     string
	Class    string
	Pool     gateway.Pool
	Weight   float64
	Health   *guard.PoolHealth
	Retained time.Time
	Window   *guard.Population
	ErrChart chart
	P95Chart chart
}

// flagRow is a flag on the deployment page.
type flagRow struct {
	Name    string
	ID      string
	Percent float64
	Cohorts *guard.Cohorts[guard.Population]
	OnErr   chart
	OffErr  chart
	OnP95   chart
	OffP95  chart
}

// chart is one horizontal bar against the guard's ceiling: Fill is the
// figure's share of the scale, Limit the ceiling's, both in percent.
type chart struct {
	Label string
	Fill  float64
	Limit float64
	Over  bool
	Has   bool
}

func rateChart(p guard.Population, ceiling float64) chart {
	scale := max(ceiling*2, p.ErrorRate, 1)
	ch := chart{Label: fmt.Sprintf("error rate %.2f%%", p.ErrorRate), Fill: 100 * p.ErrorRate / scale, Has: true}
	if ceiling > 0 {
		ch.Limit = 100 * ceiling / scale
		ch.Label += fmt.Sprintf(", ceiling %g%%", ceiling)
		ch.Over = p.ErrorRate > ceiling
	}
	return ch
}

func p95Chart(p guard.Population, ceiling gateway.Duration) chart {
	v, c := float64(p.P95), float64(ceiling)
	scale := max(c*2, v, float64(time.Millisecond))
	ch := chart{Label: "p95 " + time.Duration(p.P95).Round(time.Millisecond).String(), Fill: 100 * v / scale, Has: true}
	if c > 0 {
		ch.Limit = 100 * c / scale
		ch.Label += ", ceiling " + time.Duration(ceiling).String()
		ch.Over = v > c
	}
	return ch
}

// row is one field of a document in the side-by-side diff.
type row struct {
	Path        string
	Left, Right string
	Changed     bool
}

// sideBySide lays two documents out field by field (JSON paths, arrays as
// values), marking the fields under any of the changed paths.
func sideBySide(from, to gateway.Config, changes []configstore.Change) []row {
	left, right := flatten(from), flatten(to)
	paths := slices.Sorted(maps.Keys(left))
	for p := range right {
		if _, ok := left[p]; !ok {
			paths = append(paths, p)
		}
	}
	slices.Sort(paths)
	out := make([]row, 0, len(paths))
	for _, p := range paths {
		r := row{Path: p, Left: left[p], Right: right[p]}
		for _, ch := range changes {
			if p == ch.Path || strings.HasPrefix(p, ch.Path+".") {
				r.Changed = true
				break
			}
		}
		out = append(out, r)
	}
	// A change to a field the API's deployment answer leaves out (such as
	// retained, which is state) still gets its row.
	for _, ch := range changes {
		if !slices.ContainsFunc(out, func(r row) bool { return r.Path == ch.Path || strings.HasPrefix(r.Path, ch.Path+".") }) {
			out = append(out, row{Path: ch.Path, Left: jsonValue(ch.From), Right: jsonValue(ch.To), Changed: true})
		}
	}
	slices.SortFunc(out, func(a, b row) int { return strings.Compare(a.Path, b.Path) })
	return out
}

func flatten(c gateway.Config) map[string]string {
	c.Version = 0
	b, _ := json.Marshal(c)
	var tree map[string]any
	_ = json.Unmarshal(b, &tree)
	delete(tree, "version")
	out := map[string]string{}
	var walk func(prefix string, v any)
	walk = func(prefix string, v any) {
		if m, ok := v.(map[string]any); ok && len(m) > 0 {
			for k, sub := range m {
				p := k
				if prefix != "" {
					p = prefix + "." + k
				}
				walk(p, sub)
			}
			return
		}
		out[prefix] = jsonValue(v)
	}
	walk("", tree)
	return out
}

// jsonValue shows a changed value compactly; absent is "(none)".
func jsonValue(v any) string {
	if v == nil {
		return "(none)"
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

// change is a configstore.Change for the page.
type change struct {
	Path     string
	From, To string
}

func changesOf(cs []configstore.Change) []change {
	out := make([]change, 0, len(cs))
	for _, c := range cs {
		out = append(out, change{Path: c.Path, From: jsonValue(c.From), To: jsonValue(c.To)})
	}
	return out
}
