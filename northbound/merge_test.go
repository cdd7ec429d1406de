package northbound

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/edgegw/edgegw"
	"github.com/edgegw/edgegw/buffer"
)

// applyPatch applies a JSON merge patch (RFC 7386) to doc, as the hub
// applies reported patches.
func applyPatch(doc any, patch any) any {
	p, ok := patch.(map[string]any)
	if !ok {
		return patch
	}
	d, ok := doc.(map[string]any)
	if !ok {
		d = map[string]any{}
	} else {
		c := make(map[string]any, len(d))
		for k, v := range d {
			c[k] = v
		}
		d = c
	}
	for k, v := range p {
		if v == nil {
			delete(d, k)
			continue
		}
		d[k] = applyPatch(d[k], v)
	}
	return d
}

func decode(t *testing.T, s string) any {
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("%s: %v", s, err)
	}
	return v
}

func TestMergeReported(t *testing.T) {
	tests := []struct {
		a, b, want string
		ok         bool
	}{
		{`{"a":1}`, `{"b":2}`, `{"a":1,"b":2}`, true},
		{`{"a":1}`, `{"a":null}`, `{"a":null}`, true},
		{`{"o":{"x":1}}`, `{"o":{"y":2,"x":null}}`, `{"o":{"x":null,"y":2}}`, true},
		{`{"o":{"x":1}}`, `{"o":5}`, `{"o":5}`, true},
		{`{"n":12345678901234567890}`, `{"m":1.50}`, `{"m":1.50,"n":12345678901234567890}`, true},
		{`{"o":null}`, `{"o":{"x":1}}`, ``, false}, // delete then set: not one patch
		{`{"o":3}`, `{"o":{"x":1}}`, ``, false},
		{`[1]`, `{"a":1}`, ``, false},
		{`{"a":1}`, `{"a":1} {}`, ``, false},
	}
	for _, tt := range tests {
		got, ok := mergeReported([]byte(tt.a), []byte(tt.b))
		if ok != tt.ok || (ok && string(got) != tt.want) {
			t.Errorf("merge(%s, %s) = %s, %v; want %s, %v", tt.a, tt.b, got, ok, tt.want, tt.ok)
		}
	}
}

func TestBatchMergesRunsOfReported(t *testing.T) {
	rec := func(seq uint64, kind edgegw.MessageKind, body string) buffer.Record {
		m := edgegw.Message{Identity: "d", Kind: kind, Body: []byte(body)}
		b, _ := m.MarshalBinary()
		return buffer.Record{Seq: seq, Data: b}
	}
	items := batch(nil, []buffer.Record{
		rec(1, edgegw.Reported, `{"a":1}`), rec(2, edgegw.Reported, `{"b":2}`),
		rec(3, edgegw.Telemetry, `x`),
		rec(4, edgegw.Reported, `{"o":null}`), rec(5, edgegw.Reported, `{"o":{"x":1}}`),
		{Seq: 6, Data: []byte{9, 9}},
		rec(7, edgegw.Telemetry, string(make([]byte, MaxMessageBytes))),
	})
	want := []struct {
		last  uint64
		count int
		body  string
		bad   bool
	}{{2, 2, `{"a":1,"b":2}`, false}, {3, 1, "x", false}, {4, 1, `{"o":null}`, false}, {5, 1, `{"o":{"x":1}}`, false},
		{6, 1, "", true}, {7, 1, "", true}}
	if len(items) != len(want) {
		t.Fatalf("%d items: %+v", len(items), items)
	}
	for i, w := range want {
		it := items[i]
		if it.last != w.last || it.count != w.count || (it.bad != nil) != w.bad || (!w.bad && string(it.msg.Body) != w.body) {
			t.Errorf("item %d: %+v, want %+v", i, it, w)
		}
	}
}

// FuzzMergeReported checks that a merged patch has the same effect as the
// two patches applied one after the other, on any document.
func FuzzMergeReported(f *testing.F) {
	f.Add(`{"a":1,"o":{"x":1}}`, `{"o":{"y":null},"b":[1]}`, `{"o":{"y":2,"z":3},"a":0}`)
	f.Add(`{"o":null}`, `{"o":{"x":1}}`, `{"o":{"y":1}}`)
	f.Fuzz(func(t *testing.T, a, b, doc string) {
		merged, ok := mergeReported([]byte(a), []byte(b))
		if !ok {
			return
		}
		var pa, pb, pm, d any
		if json.Unmarshal([]byte(a), &pa) != nil || json.Unmarshal([]byte(b), &pb) != nil {
			t.Fatalf("merged invalid inputs %q %q", a, b)
		}
		if err := json.Unmarshal(merged, &pm); err != nil {
			t.Fatalf("merged to invalid JSON %q: %v", merged, err)
		}
		if json.Unmarshal([]byte(doc), &d) != nil {
			d = map[string]any{}
		}
		if _, isObj := d.(map[string]any); !isObj {
			d = map[string]any{}
		}
		seq := applyPatch(applyPatch(d, pa), pb)
		one := applyPatch(d, pm)
		if !reflect.DeepEqual(seq, one) {
			t.Fatalf("doc %s, a %s, b %s: sequential %v, merged %s gives %v", doc, a, b, seq, merged, one)
		}
	})
}
