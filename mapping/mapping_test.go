package mapping

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/edgegw/edgegw"
)

// TestConfigDocExample keeps the YAML example in Config's doc comment
// valid: it is decoded strictly and must pass Validate.
func TestConfigDocExample(t *testing.T) {
	src, err := os.ReadFile("config.go")
	if err != nil {
		t.Fatal(err)
	}
	var y strings.Builder
	in := false
	for _, line := range strings.Split(string(src), "\n") {
		if strings.HasPrefix(line, "//\tmapping:") {
			in = true
		}
		if in && !strings.HasPrefix(line, "//\t") {
			break
		}
		if in {
			y.WriteString(strings.TrimPrefix(line, "//\t") + "\n")
		}
	}
	if y.Len() == 0 {
		t.Fatal("no example found in config.go")
	}
	var doc struct {
		Mapping Config `yaml:"mapping"`
	}
	dec := yaml.NewDecoder(strings.NewReader(y.String()))
	dec.KnownFields(true)
	if err := dec.Decode(&doc); err != nil {
		t.Fatalf("decode example: %v\n%s", err, y.String())
	}
	doc.Mapping.SetDefaults()
	if err := doc.Mapping.Validate(); err != nil {
		t.Fatalf("example does not validate: %v", err)
	}
	if len(doc.Mapping.Devices) == 0 || len(doc.Mapping.Methods) == 0 || len(doc.Mapping.C2D) == 0 {
		t.Fatal("example lost a section")
	}
}

func TestNewRejectsInvalidConfig(t *testing.T) {
	cfg := Config{Devices: []DeviceRule{{Adapter: "a"}}}
	cfg.SetDefaults()
	_, err := New(cfg)
	var fe *edgegw.FieldError
	if !errors.As(err, &fe) || fe.Path != "devices[0].device" {
		t.Fatalf("New: %v, want a FieldError at devices[0].device", err)
	}
}

func TestCheckIdentities(t *testing.T) {
	cfg := Config{
		Devices: []DeviceRule{{Adapter: "a", Device: "d", Identity: "x"}},
		Methods: []MethodRule{{Identity: "y", Name: "m"}},
		C2D:     []C2DRule{{Identity: "x", Kind: "ignore"}},
	}
	err := cfg.CheckIdentities([]edgegw.DeviceID{"x"})
	if err == nil || err.Error() != `methods[0].identity: identity "y" is not configured` {
		t.Fatalf("got %v", err)
	}
	if err := cfg.CheckIdentities([]edgegw.DeviceID{"x", "y"}); err != nil {
		t.Fatal(err)
	}
}

func TestStatusOf(t *testing.T) {
	for _, c := range []struct {
		err  error
		want int
	}{
		{nil, 200},
		{errors.New("x"), 502},
		{ErrNotRun, 424},
		{fmt.Errorf("write: %w", WithStatus(errors.New("gone"), 404)), 404},
	} {
		if got := StatusOf(c.err); got != c.want {
			t.Errorf("StatusOf(%v) = %d, want %d", c.err, got, c.want)
		}
	}
	if WithStatus(nil, 404) != nil {
		t.Error("WithStatus(nil) != nil")
	}
}

// TestConcurrent runs Up, Down and Complete from several goroutines (for
// the race detector) and checks change-of-value stays per point.
func TestConcurrent(t *testing.T) {
	m, err := New(fuzzConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	// The device holds 20, which every desired version writes: reported
	// once, by this first reading.
	if msgs, err := m.Up(edgegw.Reading{Adapter: "plc", Device: "plc-3", Time: t0.Add(-time.Second),
		Points: []edgegw.Point{{Name: "setpoint", Value: edgegw.Float(20)}}}); err != nil ||
		!slices.ContainsFunc(msgs, func(m edgegw.Message) bool { return m.Kind == edgegw.Reported }) {
		t.Fatalf("first reading: %v, %v; want a reported patch", msgs, err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	sent := 0
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				msgs, err := m.Up(edgegw.Reading{Adapter: "plc", Device: "plc-3", Time: t0.Add(time.Duration(i) * time.Second),
					Points: []edgegw.Point{{Name: "setpoint", Value: edgegw.Float(20)}, {Name: "temperature", Value: edgegw.Float(float64(g))}}})
				if err != nil {
					t.Error(err)
					return
				}
				for _, msg := range msgs {
					if msg.Kind == edgegw.Reported {
						mu.Lock()
						sent++
						mu.Unlock()
					}
				}
				p := m.Down(edgegw.Command{Identity: "plc-3", Kind: edgegw.Desired, Version: int64(i),
					Payload: []byte(`{"setpoint": 20}`)})
				if _, ack := m.Complete(p, make([]error, len(p.Actions))); ack == nil {
					t.Error("no ack")
					return
				}
			}
		}()
	}
	wg.Wait()
	if sent != 0 {
		t.Errorf("unchanged property reported %d more times, want once in all", sent)
	}
}

// TestUpDoesNotAlias checks that messages do not share memory with the
// reading or the rules.
func TestUpDoesNotAlias(t *testing.T) {
	cfg := Config{Devices: []DeviceRule{{Adapter: "lan", Device: "d", Identity: "x", Properties: map[string]string{"k": "v"}}}}
	cfg.SetDefaults()
	m, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	in := &edgegw.Message{Body: []byte(`{}`), Properties: make([]edgegw.Property, 0, 4)}
	msgs, err := m.Up(edgegw.Reading{Adapter: "lan", Device: "d", Time: time.Unix(1, 0), Message: in})
	if err != nil || len(msgs) != 1 {
		t.Fatal(msgs, err)
	}
	msgs[0].Properties[0].Value = "changed"
	if len(in.Properties) != 0 {
		t.Error("input message's properties were changed")
	}
	again, _ := m.Up(edgegw.Reading{Adapter: "lan", Device: "d", Time: time.Unix(1, 0), Message: in})
	if again[0].Properties[0].Value != "v" {
		t.Error("rule properties were changed through a message")
	}
	if !bytes.Equal(again[0].Body, []byte(`{}`)) {
		t.Error("body changed")
	}
}

// TestUpNaN checks that a NaN reading encodes as null and counts as one
// value for change-of-value.
func TestUpNaN(t *testing.T) {
	db := 0.1
	cfg := Config{Devices: []DeviceRule{{Adapter: "a", Device: "d", Identity: "x", Deadband: &db}}}
	cfg.SetDefaults()
	m, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Unix(1e9, 0)
	var bodies []string
	for i, f := range []float64{math.NaN(), math.NaN(), 1, math.Inf(1)} {
		msgs, err := m.Up(edgegw.Reading{Adapter: "a", Device: "d", Time: t0.Add(time.Duration(i) * time.Second),
			Points: []edgegw.Point{{Name: "p", Value: edgegw.Float(f)}}})
		if err != nil {
			t.Fatal(err)
		}
		for _, msg := range msgs {
			bodies = append(bodies, string(msg.Body))
		}
	}
	want := []string{`{"p":null}`, `{"p":1}`, `{"p":null}`}
	if fmt.Sprint(bodies) != fmt.Sprint(want) {
		t.Errorf("bodies %q, want %q", bodies, want)
	}
}
