package mapping

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/edgegw/edgegw"
)

// A template is a frame, topic or payload with ${references} to parameters
// and to the command. It is parsed once, at load.
type template struct {
	parts []part
}

type part struct {
	lit  string // literal text, when ref is ""
	ref  string // parameter name, "identity", "method", "payload" or "prop:<key>"
	json bool   // ${ref:json}: JSON-encode the value
}

// parseTemplate parses s: ${ref} and ${ref:json} are references, "$${"
// is a literal "${"; every other character is literal. allowed says which
// references are permitted and returns a reason when one is not.
func parseTemplate(s string, allowed func(ref string) error) (template, error) {
	var t template
	var lit strings.Builder
	for i := 0; i < len(s); i++ {
		switch {
		case strings.HasPrefix(s[i:], "$${"):
			lit.WriteString("${")
			i += 2
		case strings.HasPrefix(s[i:], "${"):
			end := strings.IndexByte(s[i:], '}')
			if end < 0 {
				return t, fmt.Errorf("unclosed '${' at offset %d (write '$${' for a literal one)", i)
			}
			ref := s[i+2 : i+end]
			p := part{ref: ref}
			if name, ok := strings.CutSuffix(ref, ":json"); ok {
				p = part{ref: name, json: true}
			}
			if p.ref == "" {
				return t, fmt.Errorf("empty reference at offset %d", i)
			}
			if err := allowed(p.ref); err != nil {
				return t, fmt.Errorf("${%s}: %v", ref, err)
			}
			if lit.Len() > 0 {
				t.parts = append(t.parts, part{lit: lit.String()})
				lit.Reset()
			}
			t.parts = append(t.parts, p)
			i += end
		default:
			lit.WriteByte(s[i])
		}
	}
	if lit.Len() > 0 {
		t.parts = append(t.parts, part{lit: lit.String()})
	}
	return t, nil
}

// refs returns the references t makes.
func (t template) refs() []string {
	var out []string
	for _, p := range t.parts {
		if p.ref != "" {
			out = append(out, p.ref)
		}
	}
	return out
}

func (t template) empty() bool { return len(t.parts) == 0 }

// env is what a template is expanded with.
type env struct {
	params   map[string]edgegw.Value
	identity string
	method   string
	payload  []byte
	props    []edgegw.Property
}

func (e *env) lookup(ref string) (edgegw.Value, error) {
	switch ref {
	case "identity":
		return edgegw.String(e.identity), nil
	case "method":
		return edgegw.String(e.method), nil
	case "payload":
		return edgegw.String(string(e.payload)), nil
	}
	if key, ok := strings.CutPrefix(ref, "prop:"); ok {
		for _, p := range e.props {
			if p.Key == key {
				return edgegw.String(p.Value), nil
			}
		}
		return edgegw.Value{}, fmt.Errorf("missing application property %q", key)
	}
	v, ok := e.params[ref]
	if !ok || !v.IsValid() {
		return edgegw.Value{}, fmt.Errorf("missing parameter %q", ref)
	}
	return v, nil
}

// expand fills in t. A verbatim string with a control character is an
// error (it could smuggle a second command onto a serial line), except
// ${payload}, which the rule's author chose to pass through whole.
func (t template) expand(e *env) ([]byte, error) {
	var b []byte
	for _, p := range t.parts {
		if p.ref == "" {
			b = append(b, p.lit...)
			continue
		}
		v, err := e.lookup(p.ref)
		if err != nil {
			return nil, err
		}
		if p.json {
			if p.ref == "payload" {
				if !json.Valid(e.payload) {
					return nil, fmt.Errorf("payload is not JSON")
				}
				b = append(b, e.payload...)
				continue
			}
			j, _ := v.MarshalJSON()
			b = append(b, j...)
			continue
		}
		if s, ok := v.Str(); ok {
			if p.ref != "payload" && hasControl(s) {
				return nil, fmt.Errorf("${%s}: control character in %q", p.ref, s)
			}
			b = append(b, s...)
			continue
		}
		b = append(b, text(v)...)
	}
	return b, nil
}

// text formats a non-string value for a frame or topic: numbers in plain
// decimal (1500000, not 1.5e+06).
func text(v edgegw.Value) string {
	if v.Kind() == edgegw.KindFloat {
		f, _ := v.Float()
		return strconv.FormatFloat(f, 'f', -1, 64)
	}
	return v.String()
}
