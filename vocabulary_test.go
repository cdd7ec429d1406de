package edgegw_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/edgegw/edgegw"
)

func TestMessageRoundTrip(t *testing.T) {
	cases := []edgegw.Message{
		{Identity: "d1", Kind: edgegw.Telemetry},
		{
			Identity: "gw/mod", Kind: edgegw.Reported, Body: []byte(`{"a":1}`),
			ContentType: "application/json", ContentEncoding: "utf-8", MessageID: "m-1", CorrelationID: "c-1",
			Created: time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC), Alarm: true,
			Properties: []edgegw.Property{{"source", "plc-3"}, {"k=y", "v&w"}, {"", ""}},
		},
	}
	for _, m := range cases {
		b, err := m.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		var got edgegw.Message
		if err := got.UnmarshalBinary(b); err != nil {
			t.Fatalf("unmarshal %+v: %v", m, err)
		}
		if len(m.Body) == 0 {
			m.Body = nil // an empty body decodes as nil
		}
		if !reflect.DeepEqual(got, m) {
			t.Errorf("round trip:\n got %+v\nwant %+v", got, m)
		}
	}
}

func TestMessageUnmarshalRejectsGarbage(t *testing.T) {
	good, _ := (&edgegw.Message{Identity: "d", Kind: edgegw.Telemetry, Properties: []edgegw.Property{{"a", "b"}}}).MarshalBinary()
	for name, b := range map[string][]byte{
		"empty":     nil,
		"version":   {9, 1, 0, 0},
		"kind":      {1, 7, 0, 0},
		"truncated": good[:len(good)-3],
		"huge str":  {1, 1, 0, 0, 0xff, 0xff, 0x03},
		"count":     {1, 1, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0x7f},
	} {
		var m edgegw.Message
		m.MessageID = "unchanged"
		err := m.UnmarshalBinary(b)
		if !errors.Is(err, edgegw.ErrBadMessage) {
			t.Errorf("%s: err = %v, want ErrBadMessage", name, err)
		}
		if m.MessageID != "unchanged" {
			t.Errorf("%s: message changed on error", name)
		}
	}
}

func FuzzMessageUnmarshal(f *testing.F) {
	seed, _ := (&edgegw.Message{Identity: "d", Kind: edgegw.Telemetry, Body: []byte("x"), Properties: []edgegw.Property{{"a", "b"}}}).MarshalBinary()
	f.Add(seed)
	f.Add([]byte{1, 2, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		var m edgegw.Message
		if err := m.UnmarshalBinary(b); err != nil {
			return
		}
		again, _ := m.MarshalBinary()
		var m2 edgegw.Message
		if err := m2.UnmarshalBinary(again); err != nil {
			t.Fatalf("re-encoded message does not decode: %v", err)
		}
		if !reflect.DeepEqual(m, m2) {
			t.Fatalf("unstable round trip: %+v vs %+v", m, m2)
		}
	})
}

func TestValueJSON(t *testing.T) {
	cases := []struct {
		v    edgegw.Value
		json string
	}{
		{edgegw.Bool(true), "true"},
		{edgegw.Int(-7), "-7"},
		{edgegw.Uint(math.MaxUint64), "18446744073709551615"},
		{edgegw.Float(21.5), "21.5"},
		{edgegw.String(`a"b`), `"a\"b"`},
		{edgegw.Value{}, "null"},
	}
	for _, c := range cases {
		b, err := json.Marshal(c.v)
		if err != nil || string(b) != c.json {
			t.Errorf("marshal %v = %s, %v; want %s", c.v, b, err, c.json)
		}
		var back edgegw.Value
		if err := json.Unmarshal(b, &back); err != nil || back != c.v {
			t.Errorf("unmarshal %s = %v, %v; want %v", b, back, err, c.v)
		}
	}
	if b, _ := json.Marshal(edgegw.Float(math.NaN())); string(b) != "null" {
		t.Errorf("NaN marshals as %s, want null", b)
	}
	var v edgegw.Value
	if err := json.Unmarshal([]byte(`{"a":1}`), &v); err == nil || !strings.Contains(err.Error(), "object") {
		t.Errorf("object: err = %v, want a message naming an object", err)
	}
}

func TestValueAccessors(t *testing.T) {
	if i, ok := edgegw.Uint(math.MaxUint64).Int(); ok {
		t.Errorf("MaxUint64 fits int64: %d", i)
	}
	if u, ok := edgegw.Int(-1).Uint(); ok {
		t.Errorf("-1 fits uint64: %d", u)
	}
	if f, ok := edgegw.Int(3).Float(); !ok || f != 3 {
		t.Errorf("Int(3).Float() = %v, %v", f, ok)
	}
	if _, ok := edgegw.String("3").Float(); ok {
		t.Error("a string converts to float")
	}
}

func TestSecretNeverPrints(t *testing.T) {
	s := edgegw.Secret("SharedAccessSignature sr=x&sig=TOPSECRET")
	type holder struct{ Key edgegw.Secret }
	var buf bytes.Buffer
	slog.New(slog.NewTextHandler(&buf, nil)).Info("x", "key", s, "h", holder{s})
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("x", "key", s, "h", holder{s})
	j, _ := json.Marshal(holder{s})
	for _, out := range []string{
		fmt.Sprint(s), fmt.Sprintf("%v %+v %#v %s %q %x", s, s, s, s, s, s),
		fmt.Sprintf("%v %+v %#v", holder{s}, holder{s}, holder{s}), buf.String(), string(j),
	} {
		if strings.Contains(out, "TOPSECRET") {
			t.Errorf("secret leaked: %s", out)
		}
	}
	if s.Reveal() != "SharedAccessSignature sr=x&sig=TOPSECRET" {
		t.Error("Reveal lost the value")
	}
}

func TestPrefixErrors(t *testing.T) {
	err := errors.Join(edgegw.Errorf("timeout", "must be > 0"), edgegw.Errorf("[2].name", "must be set"), errors.New("plain"))
	got := edgegw.PrefixErrors("southbound[1].modbus", err).Error()
	want := "southbound[1].modbus.timeout: must be > 0\nsouthbound[1].modbus[2].name: must be set\nsouthbound[1].modbus: plain"
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	if edgegw.PrefixErrors("x", nil) != nil {
		t.Error("nil error became non-nil")
	}
}

func FuzzValueJSON(f *testing.F) {
	for _, s := range []string{`1`, `-1`, `1.5`, `"x"`, `true`, `null`, `18446744073709551615`, `1e400`, `{"a":1}`, `[1]`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var v edgegw.Value
		if err := json.Unmarshal(b, &v); err != nil {
			return
		}
		out, err := json.Marshal(v)
		if err != nil {
			t.Fatalf("marshal %v: %v", v, err)
		}
		var back edgegw.Value
		if err := json.Unmarshal(out, &back); err != nil {
			t.Fatalf("re-decode %s: %v", out, err)
		}
		if f, ok := v.Float(); ok && f != f { // NaN cannot come from JSON
			t.Fatalf("NaN from %q", b)
		}
		if back.Kind() != v.Kind() && !(v.Kind() == edgegw.KindFloat && back.Kind() == edgegw.KindInt) {
			t.Fatalf("kind changed: %v -> %s -> %v", v, out, back)
		}
	})
}

func TestNames(t *testing.T) {
	n := edgegw.NewNames("devices")
	if err := n.Check("devices[0].name", 0, "pump"); err != nil {
		t.Fatal(err)
	}
	if err := n.Check("devices[1].name", 1, ""); err == nil || err.Error() != "devices[1].name: must be set" {
		t.Errorf("empty name: %v", err)
	}
	if err := n.Check("devices[2].name", 2, "pump"); err == nil || err.Error() != `devices[2].name: duplicate of devices[0] ("pump")` {
		t.Errorf("duplicate: %v", err)
	}
}

// BenchmarkMessageUnmarshal decodes a telemetry message as northbound does
// for every record it sends: its allocations are per message.
func BenchmarkMessageUnmarshal(b *testing.B) {
	enc, _ := (&edgegw.Message{Identity: "dev-17", Kind: edgegw.Telemetry, ContentType: "application/json", ContentEncoding: "utf-8",
		MessageID: "mid-1", Body: make([]byte, 200), Properties: []edgegw.Property{{Key: "site", Value: "north"}, {Key: "line", Value: "7"}}}).MarshalBinary()
	b.ReportAllocs()
	for b.Loop() {
		var m edgegw.Message
		if err := m.UnmarshalBinary(enc); err != nil {
			b.Fatal(err)
		}
	}
}
