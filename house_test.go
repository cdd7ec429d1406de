package edgegw_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/edgegw/edgegw"

// allowed lists, for each package directory, the module packages its
// non-test files may import: the one-way arrows of DESIGN.md. cmd may import
// anything. The gateway embeds hubsim for the quickstart demo. iothub is the
// IoT Hub protocol grammar (pure functions) that the rooms on both sides of
// the hub share. southbound/tty (serial ports) serves the southbound
// adapters. internal/testpeer is for _test.go files only: no entry lists it,
// so a non-test import of it fails here.
var allowed = map[string][]string{
	".":                 {},
	"iothub":            {"."},
	"mapping":           {"."},
	"buffer":            {"."},
	"identity":          {".", "iothub"},
	"northbound":        {".", "buffer", "identity", "iothub", "northbound/mqtt3", "northbound/dps", "internal/wsconn"},
	"northbound/mqtt3":  {},
	"northbound/dps":    {".", "identity", "iothub", "northbound/mqtt3"},
	"internal/wsconn":   {},
	"hubsim":            {".", "identity", "iothub", "internal/wsconn"},
	"southbound":        {"."},
	"southbound/tty":    {"."},
	"internal/testpeer": {".", "southbound"},
	"configs":           {},
	"ops":               {"."},
	"tools/debpkg":      {}, // a module of its own (nfpm), for make deb
	"gateway": {".", "buffer", "identity", "mapping", "northbound", "hubsim", "configs", "ops",
		"southbound", "southbound/lanmqtt", "southbound/modbus", "southbound/opcua", "southbound/serial", "southbound/simulator"},
}

type pkgInfo struct {
	imports map[string]bool // module-relative dirs
	doc     bool
	files   int
}

func scan(t *testing.T) map[string]*pkgInfo {
	t.Helper()
	pkgs := map[string]*pkgInfo{}
	fset := token.NewFileSet()
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			name := d.Name()
			if path != "." && (strings.HasPrefix(name, ".") || name == "testdata" || name == "node_modules" || name == "dist") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly|parser.ParseComments)
		if err != nil {
			return err
		}
		dir := filepath.ToSlash(filepath.Dir(path))
		p := pkgs[dir]
		if p == nil {
			p = &pkgInfo{imports: map[string]bool{}}
			pkgs[dir] = p
		}
		p.files++
		if f.Doc != nil && strings.HasPrefix(f.Doc.Text(), docPrefix(f)) {
			p.doc = true
		}
		for _, imp := range f.Imports {
			ip, _ := strconv.Unquote(imp.Path.Value)
			if ip == module {
				p.imports["."] = true
			} else if rel, ok := strings.CutPrefix(ip, module+"/"); ok {
				p.imports[rel] = true
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return pkgs
}

func docPrefix(f *ast.File) string {
	if f.Name.Name == "main" {
		return "Command "
	}
	return "Package " + f.Name.Name + " "
}

// rule finds the arrows for dir: its own entry, or its parent's for
// sub-packages (southbound/modbus follows southbound, and may import it,
// iothub and southbound/tty).
func rule(dir string) ([]string, bool) {
	if r, ok := allowed[dir]; ok {
		return r, true
	}
	if strings.HasPrefix(dir, "southbound/") {
		return []string{".", "southbound", "iothub", "southbound/tty", "internal/wsconn"}, true
	}
	return nil, false
}

func TestImportArrowsAreOneWay(t *testing.T) {
	for dir, p := range scan(t) {
		if strings.HasPrefix(dir, "cmd/") || dir == "scripts" {
			continue
		}
		ok, known := rule(dir)
		if !known {
			t.Errorf("%s: package not in DESIGN's layout; add its arrows to house_test.go", dir)
			continue
		}
		for imp := range p.imports {
			if !slices.Contains(ok, imp) {
				t.Errorf("%s imports %s: the arrows of DESIGN.md do not allow it (allowed: %v)", dir, imp, ok)
			}
		}
	}
}

func TestEveryPackageHasADocComment(t *testing.T) {
	for dir, p := range scan(t) {
		if !p.doc {
			t.Errorf("%s: no package doc comment (\"// Package name ...\" or \"// Command name ...\")", dir)
		}
	}
}
