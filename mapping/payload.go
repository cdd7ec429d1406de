package mapping

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/edgegw/edgegw"
)

// field is one member of a JSON object, in document order.
type field struct {
	key string
	raw json.RawMessage
}

// parseObject decodes a JSON object without losing order and refuses
// duplicate keys and trailing data. An empty body or null is an empty
// object. Errors name what was expected.
func parseObject(what string, b []byte) ([]field, error) {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || string(b) == "null" {
		return nil, nil
	}
	if !json.Valid(b) {
		var x any
		err := json.Unmarshal(b, &x)
		return nil, fmt.Errorf("%s: want a JSON object, got invalid JSON (%v)", what, err)
	}
	if b[0] != '{' {
		return nil, fmt.Errorf("%s: want a JSON object, got %s", what, jsonKind(b))
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if _, err := dec.Token(); err != nil { // '{'
		return nil, fmt.Errorf("%s: %v", what, err)
	}
	var out []field
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("%s: %v", what, err)
		}
		key, _ := tok.(string)
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, fmt.Errorf("%s: %v", what, err)
		}
		if seen[key] {
			return nil, fmt.Errorf("%s: duplicate field %q", what, key)
		}
		seen[key] = true
		out = append(out, field{key, raw})
	}
	if _, err := dec.Token(); err != nil { // '}'
		return nil, fmt.Errorf("%s: %v", what, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s: trailing data after the object", what)
	}
	return out, nil
}

// jsonKind names the JSON type of a valid document for an error message.
func jsonKind(b []byte) string {
	switch b[0] {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 't', 'f':
		return "a bool"
	case 'n':
		return "null"
	}
	return "a number"
}

// scalar decodes a JSON scalar; objects and arrays are errors naming l's
// expectation.
func scalar(raw json.RawMessage, l limits) (edgegw.Value, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] == '{' || raw[0] == '[' {
		k := "nothing"
		if len(raw) > 0 {
			k = jsonKind(raw)
		}
		return edgegw.Value{}, fmt.Errorf("want %s, got %s", l.want(), k)
	}
	var v edgegw.Value
	if err := v.UnmarshalJSON(raw); err != nil {
		return edgegw.Value{}, fmt.Errorf("want %s, got %s (%v)", l.want(), raw, err)
	}
	return l.coerce(v)
}

// parseParams checks a method payload against the parameters and returns
// their values, converted to each parameter's type. Every problem is
// reported, in parameter order, then unknown fields in payload order.
func parseParams(params []*param, payload []byte) (map[string]edgegw.Value, error) {
	fields, err := parseObject("payload", payload)
	if err != nil {
		return nil, err
	}
	byKey := make(map[string]json.RawMessage, len(fields))
	for _, f := range fields {
		byKey[f.key] = f.raw
	}
	vals := make(map[string]edgegw.Value, len(params))
	known := make(map[string]bool, len(params))
	var errs []string
	for _, p := range params {
		known[p.name] = true
		if len(p.lims) == 0 {
			errs = append(errs, fmt.Sprintf("payload.%s: parameter has no type", p.name))
			continue
		}
		raw, ok := byKey[p.name]
		if !ok || string(bytes.TrimSpace(raw)) == "null" {
			if p.optional {
				if p.def != nil {
					vals[p.name] = *p.def
				}
				continue
			}
			errs = append(errs, fmt.Sprintf("payload.%s: missing (want %s)", p.name, p.lims[0].want()))
			continue
		}
		v, err := p.value(raw)
		if err != nil {
			errs = append(errs, fmt.Sprintf("payload.%s: %v", p.name, err))
			continue
		}
		vals[p.name] = v
	}
	for _, f := range fields {
		if !known[f.key] {
			errs = append(errs, fmt.Sprintf("payload: unknown field %q (want: %s)", f.key, paramNames(params)))
		}
	}
	if len(errs) > 0 {
		return nil, errors.New(strings.Join(errs, "; "))
	}
	return vals, nil
}

// value decodes raw against the parameter's own limits and those of every
// point it is written to.
func (p *param) value(raw json.RawMessage) (edgegw.Value, error) {
	v, err := scalar(raw, p.lims[0])
	if err != nil {
		return v, err
	}
	for _, l := range p.lims[1:] {
		if _, err := l.coerce(v); err != nil {
			return edgegw.Value{}, err
		}
	}
	if p.re != nil && !p.re.MatchString(mustStr(v)) {
		return edgegw.Value{}, fmt.Errorf("want a string matching %q, got %s", p.pattern, describe(v))
	}
	return v, nil
}

func paramNames(ps []*param) string {
	if len(ps) == 0 {
		return "no fields"
	}
	n := make([]string, len(ps))
	for i, p := range ps {
		n[i] = p.name
	}
	return strings.Join(n, ", ")
}
