package mapping

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/edgegw/edgegw"
)

var update = flag.Bool("update", false, "rewrite the golden want files")

// rulesFile is the shape of testdata/<case>/rules.yaml: the mapping Config
// inline, plus what the gateway would supply.
type rulesFile struct {
	Config     `yaml:",inline"`
	Identities []edgegw.DeviceID `yaml:"identities"` // Config.Identities
	Points     []catalogPoint    `yaml:"points"`     // for Check; none: Check is skipped
}

type catalogPoint struct {
	Adapter  string `yaml:"adapter"`
	Device   string `yaml:"device"`
	Point    string `yaml:"point"`
	Kind     Type   `yaml:"kind"`
	Writable bool   `yaml:"writable"`
}

// step is one entry of input.json: a reading, or a command with the
// outcomes of its actions (missing: all succeed).
type step struct {
	Reading *inReading `json:"reading,omitempty"`
	Command *inCommand `json:"command,omitempty"`
	Errs    []*string  `json:"errs,omitempty"`
}

type inReading struct {
	Adapter string      `json:"adapter"`
	Device  string      `json:"device"`
	Time    time.Time   `json:"time"`
	Points  []inPoint   `json:"points"`
	Message *outMessage `json:"message"`
}

type inPoint struct {
	Name  string       `json:"name"`
	Value edgegw.Value `json:"value"`
	Kind  Type         `json:"kind"` // force the value's kind (float for 21)
	Unit  string       `json:"unit"`
}

type inCommand struct {
	Identity    edgegw.DeviceID   `json:"identity"`
	Kind        string            `json:"kind"`
	Name        string            `json:"name"`
	Payload     json.RawMessage   `json:"payload"`
	PayloadText *string           `json:"payload_text"` // a body that is not JSON
	Version     int64             `json:"version"`
	Props       []edgegw.Property `json:"props"`
}

type outStep struct {
	Messages []outMessage `json:"messages,omitempty"`
	Error    string       `json:"error,omitempty"`
	NoRoute  bool         `json:"no_route,omitempty"`
	Actions  []string     `json:"actions,omitempty"`
	Payloads []any        `json:"payloads,omitempty"`
	Rejected *outResult   `json:"rejected,omitempty"`
	Note     string       `json:"note,omitempty"`
	Result   *outResult   `json:"result,omitempty"`
	Ack      *outMessage  `json:"ack,omitempty"`
	Empty    bool         `json:"empty,omitempty"`
}

type outResult struct {
	Status  int `json:"status"`
	Payload any `json:"payload"`
}

type outMessage struct {
	Identity        edgegw.DeviceID   `json:"identity,omitempty"`
	Kind            string            `json:"kind,omitempty"`
	Body            any               `json:"body"`
	ContentType     string            `json:"content_type,omitempty"`
	ContentEncoding string            `json:"content_encoding,omitempty"`
	Created         *time.Time        `json:"created,omitempty"`
	Alarm           bool              `json:"alarm,omitempty"`
	Properties      []edgegw.Property `json:"properties,omitempty"`
}

// body shows JSON as JSON and anything else as a string.
func body(b []byte) any {
	if len(b) > 0 && json.Valid(b) {
		return json.RawMessage(b)
	}
	return string(b)
}

func fromMessage(m edgegw.Message) outMessage {
	o := outMessage{Identity: m.Identity, Kind: m.Kind.String(), Body: body(m.Body),
		ContentType: m.ContentType, ContentEncoding: m.ContentEncoding, Alarm: m.Alarm,
		Properties: m.Properties}
	if !m.Created.IsZero() {
		t := m.Created.UTC()
		o.Created = &t
	}
	return o
}

func (o *outMessage) toMessage() *edgegw.Message {
	m := &edgegw.Message{Identity: o.Identity, ContentType: o.ContentType,
		ContentEncoding: o.ContentEncoding, Alarm: o.Alarm, Properties: o.Properties}
	switch o.Kind {
	case "telemetry":
		m.Kind = edgegw.Telemetry
	case "reported":
		m.Kind = edgegw.Reported
	}
	if o.Created != nil {
		m.Created = *o.Created
	}
	switch b := o.Body.(type) {
	case string:
		m.Body = []byte(b)
	case nil:
	default:
		m.Body, _ = json.Marshal(b)
	}
	return m
}

func TestGolden(t *testing.T) {
	dirs, err := filepath.Glob("testdata/*/rules.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(dirs) < 40 {
		t.Errorf("%d golden cases, want at least 40", len(dirs))
	}
	for _, f := range dirs {
		dir := filepath.Dir(f)
		t.Run(filepath.Base(dir), func(t *testing.T) { runCase(t, dir) })
	}
}

func runCase(t *testing.T, dir string) {
	m, err := loadRules(filepath.Join(dir, "rules.yaml"))
	errFile := filepath.Join(dir, "want_error.txt")
	wantFile := filepath.Join(dir, "want.json")
	if err != nil {
		if *update {
			os.Remove(wantFile)
		}
		compare(t, errFile, []byte(err.Error()+"\n"))
		return
	}
	if _, statErr := os.Stat(errFile); statErr == nil {
		if !*update {
			t.Fatalf("rules loaded, but %s expects an error", errFile)
		}
		os.Remove(errFile)
	}
	raw, err := os.ReadFile(filepath.Join(dir, "input.json"))
	if err != nil {
		t.Fatal(err)
	}
	var steps []step
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&steps); err != nil {
		t.Fatalf("input.json: %v", err)
	}
	var out []outStep
	for i, s := range steps {
		o, err := runStep(m, s)
		if err != nil {
			t.Fatalf("input.json step %d: %v", i, err)
		}
		out = append(out, o)
	}
	got, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	compare(t, wantFile, append(got, '\n'))
}

func loadRules(path string) (*Mapper, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var rf rulesFile
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(&rf); err != nil {
		return nil, fmt.Errorf("decode: %w", err)
	}
	cfg := rf.Config
	cfg.Identities = rf.Identities
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("validate:\n%w", err)
	}
	if rf.Points != nil {
		var infos []edgegw.PointInfo
		for _, p := range rf.Points {
			infos = append(infos, edgegw.PointInfo{Adapter: p.Adapter, Device: p.Device,
				Point: p.Point, Kind: p.Kind.Kind(), Writable: p.Writable})
		}
		if err := cfg.Check(infos); err != nil {
			return nil, fmt.Errorf("check:\n%w", err)
		}
	}
	return New(cfg)
}

func runStep(m *Mapper, s step) (outStep, error) {
	var o outStep
	switch {
	case s.Reading != nil:
		r := edgegw.Reading{Adapter: s.Reading.Adapter, Device: s.Reading.Device, Time: s.Reading.Time}
		for _, p := range s.Reading.Points {
			v := p.Value
			if p.Kind != "" {
				var ok bool
				if v, ok = convert(v, p.Kind.Kind()); !ok {
					return o, fmt.Errorf("point %s: %s is not a %s", p.Name, p.Value, p.Kind)
				}
			}
			r.Points = append(r.Points, edgegw.Point{Name: p.Name, Value: v, Unit: p.Unit})
		}
		if s.Reading.Message != nil {
			r.Message = s.Reading.Message.toMessage()
		}
		msgs, err := m.Up(r)
		if err != nil {
			o.Error = err.Error()
			o.NoRoute = errors.Is(err, ErrNoRoute)
		}
		for _, msg := range msgs {
			o.Messages = append(o.Messages, fromMessage(msg))
		}
		o.Empty = err == nil && len(msgs) == 0
	case s.Command != nil:
		cmd, err := s.Command.toCommand()
		if err != nil {
			return o, err
		}
		p := m.Down(cmd)
		for _, a := range p.Actions {
			o.Actions = append(o.Actions, a.String())
			if a.Kind != edgegw.WritePoint {
				o.Payloads = append(o.Payloads, body(a.Payload))
			}
		}
		if p.Rejected != nil {
			o.Rejected = &outResult{p.Rejected.Status, body(p.Rejected.Payload)}
		}
		o.Note = p.Note
		errs := make([]error, len(p.Actions))
		for i, e := range s.Errs {
			if i < len(errs) {
				errs[i] = parseErr(e)
			} else {
				errs = append(errs, parseErr(e))
			}
		}
		if len(s.Errs) > 0 && len(s.Errs) < len(errs) {
			errs = errs[:len(s.Errs)] // the rest were not run
		}
		res, ack := m.Complete(p, errs)
		o.Result = &outResult{res.Status, body(res.Payload)}
		if ack != nil {
			a := fromMessage(*ack)
			o.Ack = &a
		}
	default:
		return o, errors.New("neither reading nor command")
	}
	return o, nil
}

func (c *inCommand) toCommand() (edgegw.Command, error) {
	cmd := edgegw.Command{Identity: c.Identity, Name: c.Name, Payload: c.Payload,
		Version: c.Version, Props: c.Props}
	if c.PayloadText != nil {
		cmd.Payload = []byte(*c.PayloadText)
	}
	switch c.Kind {
	case "method":
		cmd.Kind = edgegw.Method
	case "desired":
		cmd.Kind = edgegw.Desired
	case "c2d":
		cmd.Kind = edgegw.C2D
	case "bogus":
		cmd.Kind = 99
	default:
		return cmd, fmt.Errorf("kind %q", c.Kind)
	}
	return cmd, nil
}

// parseErr turns an outcome in input.json into an error: null or "" is
// success, "not_run", "timeout", "status:<code>:<text>", or any text.
func parseErr(s *string) error {
	if s == nil || *s == "" {
		return nil
	}
	switch {
	case *s == "not_run":
		return ErrNotRun
	case *s == "timeout":
		return fmt.Errorf("modbus plc: write: %w", context.DeadlineExceeded)
	case strings.HasPrefix(*s, "status:"):
		code, text, _ := strings.Cut(strings.TrimPrefix(*s, "status:"), ":")
		n, _ := strconv.Atoi(code)
		return WithStatus(errors.New(text), n)
	}
	return errors.New(*s)
}

func compare(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./mapping -update to create it)\ngot:\n%s", err, got)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}
