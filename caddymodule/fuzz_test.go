package caddymodule

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"
	_ "github.com/caddyserver/caddy/v2/modules/standard"

	"github.com/a8e2c47e/switchback/gateway"
)

// fileLine is how an adapt error says where it is: the fuzz targets adapt
// a file named Caddyfile.
var fileLine = regexp.MustCompile(`Caddyfile:\d+`)

// adaptFuzzed adapts src and holds it to the Caddyfile's promise: an error
// says file and line, and a config that adapts is one Provision accepts.
// It returns the adapted JSON, or nil after an error.
func adaptFuzzed(t *testing.T, src string) map[string]any {
	t.Helper()
	out, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(src), map[string]any{"filename": "Caddyfile"})
	if err != nil {
		if !fileLine.MatchString(err.Error()) {
			t.Fatalf("adapt error without file:line: %v\nCaddyfile:\n%s", err, src)
		}
		return nil
	}
	var cfg map[string]any
	if err := json.Unmarshal(out, &cfg); err != nil {
		t.Fatalf("adapted config is not JSON: %v\n%s", err, out)
	}
	return cfg
}

// switchbackHandlers finds every switchback handler in an adapted config,
// however deeply routes and subroutes nest it.
func switchbackHandlers(v any) []map[string]any {
	var found []map[string]any
	switch v := v.(type) {
	case map[string]any:
		if v["handler"] == "switchback" {
			found = append(found, v)
		}
		for _, c := range v {
			found = append(found, switchbackHandlers(c)...)
		}
	case []any:
		for _, c := range v {
			found = append(found, switchbackHandlers(c)...)
		}
	}
	return found
}

// strictDecode decodes JSON the config produced into v, refusing fields v
// does not have: an adapter writing a field the module never reads would
// be a setting that silently does nothing.
func strictDecode(t *testing.T, what string, raw any, v any) {
	t.Helper()
	b, err := json.Marshal(raw)
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%s does not decode into its module: %v\n%s", what, err, b)
	}
}

// checkHandler runs, on an adapted switchback handler, every check its
// Provision makes before it builds anything.
func checkHandler(t *testing.T, src string, raw map[string]any) {
	t.Helper()
	delete(raw, "handler")
	var h Handler
	strictDecode(t, "switchback handler", raw, &h)
	var errs []error
	if h.Sticky != nil {
		if _, err := gateway.ParseSticky(h.Sticky.Source, h.Sticky.Name); err != nil {
			errs = append(errs, err)
		}
	}
	if err := checkProxyTemplate(h.ProxyRaw); err != nil {
		errs = append(errs, err)
	}
	if len(h.ProxyRaw) > 0 {
		var rp reverseproxy.Handler
		if err := json.Unmarshal(h.ProxyRaw, &rp); err != nil {
			errs = append(errs, fmt.Errorf("proxy: %w", err))
		}
	}
	if err := h.bootstrapConfig().Validate(); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		t.Fatalf("adapted without error, but Provision would refuse it: %v\nCaddyfile:\n%s", errs, src)
	}
}

// fuzzDirectivePrefix gives the site the switchback app, so a guard or
// health_uri in the fuzzed directive is legal.
const fuzzDirectivePrefix = "{\n\tswitchback {\n\t\tadmin off\n\t}\n}\n:8080 {\n"

// FuzzSwitchbackDirective adapts any text inside a site block: no panic,
// and either an error naming Caddyfile:LINE or handlers that Provision
// accepts.
func FuzzSwitchbackDirective(f *testing.F) {
	for _, seed := range directiveSeeds(f) {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, body string) {
		if strings.Contains(body, "import") || escapesBlock(body) || hasMatcher(body) {
			return // reads files, or is Caddy's text rather than ours
		}
		src := fuzzDirectivePrefix + body + "\n}\n"
		cfg := adaptFuzzed(t, src)
		for _, h := range switchbackHandlers(cfg) {
			checkHandler(t, src, h)
		}
	})
}

// escapesBlock says whether body closes the block it is put in: what
// follows is a site or an option of Caddy's, whose errors are Caddy's.
func escapesBlock(body string) bool {
	// A heredoc (<<MARKER) is Caddy's lexer's, which reports its own
	// errors without our file:line.
	if strings.Contains(body, "<<") {
		return true
	}
	depth := 0
	for _, c := range body {
		switch c {
		case '{':
			depth++
		case '}':
			if depth--; depth < 0 {
				return true
			}
		}
	}
	return false
}

// hasMatcher says whether a switchback directive in body starts with a
// request matcher (@name, /path, *), or body defines a named matcher (a
// line starting with @): Caddy parses those before the directive sees its
// tokens, and reports its own errors.
func hasMatcher(body string) bool {
	for _, line := range strings.Split(body, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "@") {
			return true
		}
	}
	f := strings.Fields(body)
	for i := 0; i+1 < len(f); i++ {
		if f[i] == "switchback" && strings.ContainsAny(f[i+1][:1], "@/*") {
			return true
		}
	}
	return false
}

// directiveSeeds are the switchback blocks of the golden adapt files and
// of TestCaddyfileErrors.
func directiveSeeds(f *testing.F) []string {
	files, err := filepath.Glob("testdata/caddyfile_adapt/*.caddyfiletest")
	if err != nil || len(files) == 0 {
		f.Fatalf("no golden files: %v", err)
	}
	var seeds []string
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		cf, _, _ := strings.Cut(string(data), "\n----------")
		if block := switchbackBlock(cf); block != "" {
			seeds = append(seeds, block)
		}
	}
	for _, body := range []string{
		"pool blue 127.0.0.1:1\npool green 127.0.0.1:2\nlive purple",
		"pool blue 127.0.0.1:1\npool green 127.0.0.1:2\nweights blue 90 green 20",
		"pool blue 127.0.0.1:1\npool green 127.0.0.1:2\nflag f 0.001",
		"pool blue {http.request.header.X-Evil}:9001\npool green 127.0.0.1:2",
		"pool blue 127.0.0.1:1\npool green 127.0.0.1:2\nguard {\nerror_rate 5%\nwindow 0s\n}",
		"pool blue 127.0.0.1:1\npool green 127.0.0.1:2\nproxy {\nto 127.0.0.1:3\n}",
		"pool blue 127.0.0.1:1 {\nrelease v1\nrelease v2\n}\npool green 127.0.0.1:2",
		"pool blue 127.0.0.1:1\npool green 127.0.0.1:2\nsticky header X-User-ID\nhealth_uri /h\nhealth_interval 1s\nretain 1h",
		"pool blue 127.0.0.1:1\npool green 127.0.0.1:2\nguard {\nerror_rate 5%\np95 500ms\nbaseline 2x\nerrors 5xx 429\ncooldown 1s\nmin_requests 3\n}",
	} {
		seeds = append(seeds, "switchback checkout {\n"+body+"\n}")
	}
	return seeds
}

// switchbackBlock cuts the first switchback directive, with its block, out
// of a Caddyfile.
func switchbackBlock(cf string) string {
	i := strings.Index(cf, "switchback ")
	if i < 0 {
		return ""
	}
	depth := 0
	for j := i; j < len(cf); j++ {
		switch cf[j] {
		case '{':
			depth++
		case '}':
			depth--
			if depth == 0 {
				return cf[i : j+1]
			}
		}
	}
	return ""
}

// fuzzGlobalSite is a minimal site, so the global option is not alone.
const fuzzGlobalSite = "\n:8080 {\n\tswitchback checkout {\n\t\tpool blue 127.0.0.1:1\n\t\tpool green 127.0.0.1:2\n\t}\n}\n"

// FuzzSwitchbackGlobalOption adapts any text after "switchback" in the
// global options block: no panic, and either an error naming
// Caddyfile:LINE or an app that Provision would accept before it reaches
// for the store.
func FuzzSwitchbackGlobalOption(f *testing.F) {
	for _, s := range []string{
		"{\n\tadmin off\n}",
		"{\n\tstore embedded ./data/etcd 127.0.0.1:2379\n\tprefix /sb\n\tadmin 127.0.0.1:9180\n\tinstance gw-a\n\tstate_dir /tmp/state\n}",
		"{\n\tstore etcd 10.0.0.5:2379 10.0.0.6:2379 {\n\t\tprefix /switchback\n\t\tusername u\n\t\tpassword p\n\t\ttls ca.pem cert.pem key.pem\n\t\tserver_name etcd\n\t}\n}",
		"{\n\tadmin_tokens tokens.txt\n\tadmin_hosts gw.example.com\n}",
		"{\n\ton_damaged_data serve_last_known_good\n}",
		"{\n\tstate_dir /a\n\tstate_dir /b\n}",
		"{\n\tstore etcd 127.0.0.1:2379 {\n\t\tprefix /a\n\t}\n\tprefix /b\n}",
		"{\n\tadmin off\n}\n\tswitchback {\n\t\tstate_dir /a\n\t}",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		if strings.Contains(body, "import") || escapesBlock(body) {
			return
		}
		src := "{\n\tswitchback " + body + "\n}\n" + fuzzGlobalSite
		cfg := adaptFuzzed(t, src)
		if cfg == nil {
			return
		}
		apps, _ := cfg["apps"].(map[string]any)
		raw, ok := apps["switchback"]
		if !ok {
			return // the body closed the option early; nothing of ours adapted
		}
		var app App
		strictDecode(t, "switchback app", raw, &app)
		if err := checkApp(&app); err != nil {
			t.Fatalf("adapted without error, but Provision would refuse it: %v\nCaddyfile:\n%s", err, src)
		}
	})
}

// checkApp makes the checks the app's Provision makes on its settings
// before it starts or dials a store.
func checkApp(a *App) error {
	kind := "embedded"
	if a.Store != nil && a.Store.Kind != "" {
		kind = a.Store.Kind
	}
	switch kind {
	case "embedded":
		if a.Store != nil && a.Store.ClientAddr != "" {
			if _, _, err := net.SplitHostPort(a.Store.ClientAddr); err != nil {
				return fmt.Errorf("store embedded client address %q: %w", a.Store.ClientAddr, err)
			}
		}
	case "etcd":
		if len(a.Store.Endpoints) == 0 {
			return fmt.Errorf("store etcd without endpoints")
		}
	default:
		return fmt.Errorf("store %q", kind)
	}
	if a.Store != nil && a.Store.Prefix != "" && a.Store.Prefix[0] != '/' {
		return fmt.Errorf("prefix %q", a.Store.Prefix)
	}
	switch a.OnDamagedData {
	case "", onDamagedFail:
	case onDamagedServeLK:
		if kind != "embedded" {
			return fmt.Errorf("on_damaged_data %q with store %s", a.OnDamagedData, kind)
		}
	default:
		return fmt.Errorf("on_damaged_data %q", a.OnDamagedData)
	}
	return nil
}
