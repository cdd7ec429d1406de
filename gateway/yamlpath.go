package gateway

import (
	"encoding"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/edgegw/edgegw"
)

// This file turns YAML decoding problems into errors that name the config
// path ("southbound[1].modbus.timeout") rather than only a line number, and
// catches what yaml.v3 lets through: a bare number for a duration (which it
// would read as nanoseconds) and unknown keys in nested structs.

var (
	durationType        = reflect.TypeFor[time.Duration]()
	unmarshalerType     = reflect.TypeFor[yaml.Unmarshaler]()
	textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// walkNode checks node against the Go type t: every mapping key must be a
// yaml-tagged field, every duration a string with a unit. It records the
// path of every node by line so decoder errors can be mapped to paths.
func walkNode(n *yaml.Node, t reflect.Type, path string, lines map[int]string) []error {
	if n == nil {
		return nil
	}
	if n.Kind == yaml.DocumentNode {
		if len(n.Content) == 0 {
			return nil
		}
		return walkNode(n.Content[0], t, path, lines)
	}
	if _, ok := lines[n.Line]; !ok && path != "" {
		lines[n.Line] = path
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if n.Kind == yaml.AliasNode {
		return nil
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return nil
	}
	if reflect.PointerTo(t).Implements(unmarshalerType) || reflect.PointerTo(t).Implements(textUnmarshalerType) {
		return nil // the type decodes itself and reports its own errors
	}
	if t == durationType {
		if n.Kind != yaml.ScalarNode || n.Tag != "!!str" {
			return []error{edgegw.Errorf(path, "must be a duration with a unit, like 5s or 1m30s (got %q)", n.Value)}
		}
		if _, err := time.ParseDuration(n.Value); err != nil {
			return []error{edgegw.Errorf(path, "must be a duration with a unit, like 5s or 1m30s (got %q)", n.Value)}
		}
		return nil
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			return []error{edgegw.Errorf(path, "must be a mapping of keys to values (got %s)", describe(n))}
		}
		fields := yamlFields(t)
		var errs []error
		seen := map[string]bool{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Tag == "!!merge" { // "<<: *defaults": its keys belong to this struct
				for _, src := range mergeSources(v) {
					errs = append(errs, walkNode(src, t, path, lines)...)
				}
				continue
			}
			p := joinKey(path, k.Value)
			lines[k.Line] = p
			if seen[k.Value] {
				errs = append(errs, edgegw.Errorf(p, "key appears twice"))
				continue
			}
			seen[k.Value] = true
			ft, ok := fields[k.Value]
			if !ok {
				errs = append(errs, edgegw.Errorf(p, "unknown key%s", suggest(k.Value, fields)))
				continue
			}
			errs = append(errs, walkNode(v, ft, p, lines)...)
		}
		return errs
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 {
			return nil
		}
		if n.Kind != yaml.SequenceNode {
			return []error{edgegw.Errorf(path, "must be a list (got %s)", describe(n))}
		}
		var errs []error
		for i, c := range n.Content {
			errs = append(errs, walkNode(c, t.Elem(), path+"["+strconv.Itoa(i)+"]", lines)...)
		}
		return errs
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			return []error{edgegw.Errorf(path, "must be a mapping (got %s)", describe(n))}
		}
		var errs []error
		for i := 0; i+1 < len(n.Content); i += 2 {
			p := joinKey(path, n.Content[i].Value)
			lines[n.Content[i].Line] = p
			errs = append(errs, walkNode(n.Content[i+1], t.Elem(), p, lines)...)
		}
		return errs
	}
	return nil
}

// mergeSources returns the mappings a merge key's value names: one alias,
// one mapping, or a list of them.
func mergeSources(v *yaml.Node) []*yaml.Node {
	var out []*yaml.Node
	items := []*yaml.Node{v}
	if v.Kind == yaml.SequenceNode {
		items = v.Content
	}
	for _, it := range items {
		if it.Kind == yaml.AliasNode {
			it = it.Alias
		}
		if it != nil {
			out = append(out, it)
		}
	}
	return out
}

// yamlFields maps the yaml keys of struct t (including inlined structs) to
// field types. Fields tagged "-" are not settable from YAML.
func yamlFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("yaml")
		name, opts, _ := strings.Cut(tag, ",")
		if name == "-" {
			continue
		}
		if strings.Contains(opts, "inline") {
			ft := f.Type
			for ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			for k, v := range yamlFields(ft) {
				out[k] = v
			}
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		out[name] = f.Type
	}
	return out
}

func joinKey(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	}
	return fmt.Sprintf("%q", n.Value)
}

// suggest names the closest known key when the unknown one looks like a typo.
func suggest(key string, fields map[string]reflect.Type) string {
	best, bestD := "", 3
	for k := range fields {
		if d := editDistance(key, k); d < bestD {
			best, bestD = k, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

var lineRE = regexp.MustCompile(`^line (\d+): (.*)$`)

// typeErrors converts yaml.v3's "line N: cannot unmarshal ..." messages to
// path errors using the line index built by walkNode.
func typeErrors(err error, lines map[int]string) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return err
	}
	var out []error
	for _, msg := range te.Errors {
		m := lineRE.FindStringSubmatch(msg)
		if m == nil {
			out = append(out, errors.New(msg))
			continue
		}
		line, _ := strconv.Atoi(m[1])
		reason := strings.Replace(m[2], "cannot unmarshal", "cannot read", 1)
		if p, ok := lines[line]; ok && p != "" {
			out = append(out, edgegw.Errorf(p, "%s (line %d)", reason, line))
		} else {
			out = append(out, fmt.Errorf("line %d: %s", line, reason))
		}
	}
	return errors.Join(out...)
}
