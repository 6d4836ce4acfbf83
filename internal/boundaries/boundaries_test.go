package boundaries_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
)

const module = "github.com/a8e2c47e/switchback"

// pkg is what `go list -json` says of a package.
type pkg struct {
	ImportPath   string
	ForTest      string // set on a package compiled for another's tests
	Imports      []string
	TestImports  []string
	XTestImports []string
}

// list runs `go list -json args...` in this module.
func list(t *testing.T, args ...string) []pkg {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), "go", append([]string{"list", "-json"}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	var pkgs []pkg
	for dec := json.NewDecoder(bytes.NewReader(out)); ; {
		var p pkg
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			return pkgs
		} else if err != nil {
			t.Fatalf("go list %s: decode: %v", strings.Join(args, " "), err)
		}
		pkgs = append(pkgs, p)
	}
}

// modulePackages is `go list -json` of every package of the module, read
// once for the tests that need it.
var modulePackages struct {
	once sync.Once
	pkgs []pkg
}

func all(t *testing.T) []pkg {
	t.Helper()
	modulePackages.once.Do(func() { modulePackages.pkgs = list(t, module+"/...") })
	if modulePackages.pkgs == nil {
		t.Fatal("go list of the module failed in an earlier test")
	}
	return modulePackages.pkgs
}

func short(path string) string { return strings.TrimPrefix(path, module+"/") }

// chain returns the import chain from root to a package matching bad, or
// nil when root does not reach one; imports maps a package to its imports.
func chain(root string, imports map[string][]string, bad func(string) bool) []string {
	from := map[string]string{root: ""}
	queue := []string{root}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		if bad(p) {
			var path []string
			for ; p != ""; p = from[p] {
				path = append(path, short(p))
			}
			slices.Reverse(path)
			return path
		}
		for _, q := range imports[p] {
			if _, seen := from[q]; !seen {
				from[q] = p
				queue = append(queue, q)
			}
		}
	}
	return nil
}

func isCaddy(p string) bool { return strings.HasPrefix(p, "github.com/caddyserver/") }
func isEtcd(p string) bool  { return strings.HasPrefix(p, "go.etcd.io/") }

// TestCoreLinksNeitherCaddyNorEtcd: the request path and the guard's
// judgement are libraries Caddy wraps and configstore feeds; linking
// either into them, even through their tests, would make them testable only
// with a server.
func TestCoreLinksNeitherCaddyNorEtcd(t *testing.T) {
	for _, root := range []string{"gateway", "guard"} {
		t.Run(root, func(t *testing.T) {
			pkgs := list(t, "-deps", "-test", module+"/"+root)
			imports := make(map[string][]string, len(pkgs))
			for _, p := range pkgs {
				imports[p.ImportPath] = p.Imports
			}
			// The package itself first, for the shortest chain; then its
			// test binary, which reaches what the tests add.
			roots := []string{module + "/" + root, module + "/" + root + ".test"}
			for _, r := range roots {
				if _, ok := imports[r]; !ok {
					t.Fatalf("go list -deps -test %s did not list %s", root, r)
				}
			}
			for _, forbidden := range []struct {
				what string
				is   func(string) bool
			}{{"Caddy", isCaddy}, {"etcd", isEtcd}} {
				for _, r := range roots {
					if c := chain(r, imports, forbidden.is); c != nil {
						t.Errorf("%s links %s: %s", short(r), forbidden.what, strings.Join(c, " → "))
						break
					}
				}
			}
		})
	}
}

// TestOnlyConfigstoreImportsEtcd: etcd's client, its errors and its server
// stay behind configstore's API; tests of other packages reach a real etcd
// through internal/testharness/etcdtest.
//
// Two harnesses look at etcd itself, below what the store offers: the
// partition tests ask each member whether it leads, through a dialer in a
// network namespace, and the soak counts every key to see the store grow.
// They are tools around the product, not part of it.
func TestOnlyConfigstoreImportsEtcd(t *testing.T) {
	inspectors := map[string]bool{module + "/e2e/partition": true, module + "/soak": true}
	for _, p := range all(t) {
		if p.ImportPath == module+"/configstore" || inspectors[p.ImportPath] {
			continue
		}
		for kind, imports := range map[string][]string{"": p.Imports, " (tests)": p.TestImports, " (external tests)": p.XTestImports} {
			for _, imp := range imports {
				if isEtcd(imp) {
					t.Errorf("%s%s imports %s; only configstore may import etcd", short(p.ImportPath), kind, imp)
				}
			}
		}
	}
}

// TestCaddyOnlyInTheShell: Caddy is the shell around the libraries, so
// only the shell, the binary and the harness that runs a real Caddy import
// it (tests included).
func TestCaddyOnlyInTheShell(t *testing.T) {
	shell := []string{"caddymodule", "cmd/switchback", "internal/testharness/caddytest"}
	for _, p := range all(t) {
		if slices.Contains(shell, short(p.ImportPath)) {
			continue
		}
		for kind, imports := range map[string][]string{"": p.Imports, " (tests)": p.TestImports, " (external tests)": p.XTestImports} {
			for _, imp := range imports {
				if isCaddy(imp) {
					t.Errorf("%s%s imports %s; only %v may import Caddy", short(p.ImportPath), kind, imp, shell)
				}
			}
		}
	}
}

// TestModuleImports pins, for the packages at the bottom of the module,
// which of the module's packages each may import (not counting tests).
func TestModuleImports(t *testing.T) {
	allowed := map[string][]string{
		"gateway":              {},
		"guard":                {"gateway"},
		"printable":            {},
		"cmdline":              {},
		"rollout":              {"gateway", "printable"},
		"affected":             {"release"},
		"configstore":          {"gateway", "printable", "release"},
		"release":              {},
		"migrate":              {"cmdline", "printable"},
		"databases":            {"gateway", "migrate"},
		"internal/testharness": {"examples/backend"},
		"examples/backend":     {},
	}
	seen := map[string]bool{}
	for _, p := range all(t) {
		want, ok := allowed[short(p.ImportPath)]
		if !ok {
			continue
		}
		seen[short(p.ImportPath)] = true
		for _, imp := range p.Imports {
			if strings.HasPrefix(imp, module+"/") && !slices.Contains(want, short(imp)) {
				t.Errorf("%s imports %s; it may import only %v of this module", short(p.ImportPath), short(imp), want)
			}
		}
	}
	for name := range allowed {
		if !seen[name] {
			t.Errorf("no package %s: update the table", name)
		}
	}
}

// TestHarnessOnlyInTests: the test harness starts servers and fails tests;
// no package's own code may depend on it.
func TestHarnessOnlyInTests(t *testing.T) {
	for _, p := range all(t) {
		for _, imp := range p.Imports {
			if strings.HasPrefix(imp, module+"/internal/testharness") && !strings.HasPrefix(p.ImportPath, module+"/internal/testharness") {
				t.Errorf("%s imports %s outside its tests", short(p.ImportPath), short(imp))
			}
		}
	}
}
