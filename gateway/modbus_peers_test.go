package gateway

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"math"
	"net"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	sv "github.com/simonvetter/modbus"

	"github.com/edgegw/edgegw/hubsim"
)

// ---- hub side ----

// serviceClient speaks the hub's service REST API over HTTPS with a
// service SAS token (policy "service": ServiceConnect only).
type serviceClient struct {
	hub   *hubsim.Hub
	c     *http.Client
	token string
}

func newServiceClient(t *testing.T, hub *hubsim.Hub) *serviceClient {
	t.Helper()
	p, ok := hub.Policy("service")
	if !ok {
		t.Fatal("hub has no service policy")
	}
	tok, err := hubsim.NewSAS(hub.HostName, p.Name, p.PrimaryKey, time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: hub.CACertPool(), ServerName: "localhost"}}
	t.Cleanup(tr.CloseIdleConnections)
	return &serviceClient{hub: hub, c: &http.Client{Transport: tr, Timeout: 20 * time.Second}, token: tok}
}

// do sends a JSON request and decodes the answer into out.
func (c *serviceClient) do(t *testing.T, method, path string, body any, out any) int {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, "https://"+c.hub.HTTPAddress()+path+"?api-version=2021-04-12", rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", c.token)
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	resp, err := c.c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		t.Fatalf("%s %s: %s: %s", method, path, resp.Status, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %v in %s", method, path, err, b)
		}
	}
	return resp.StatusCode
}

// patchDesired PATCHes the twin's desired properties and returns the new
// desired $version.
func (c *serviceClient) patchDesired(t *testing.T, id string, desired map[string]any) int64 {
	t.Helper()
	var tw struct {
		Properties struct {
			Desired struct {
				Version int64 `json:"$version"`
			} `json:"desired"`
		} `json:"properties"`
	}
	c.do(t, http.MethodPatch, "/twins/"+id, map[string]any{"properties": map[string]any{"desired": desired}}, &tw)
	if tw.Properties.Desired.Version < 2 {
		t.Fatalf("desired $version %d after a patch", tw.Properties.Desired.Version)
	}
	return tw.Properties.Desired.Version
}

// reported GETs the twin's reported properties.
func (c *serviceClient) reported(t *testing.T, id string) map[string]any {
	t.Helper()
	var tw struct {
		Properties struct {
			Reported map[string]any `json:"reported"`
		} `json:"properties"`
	}
	c.do(t, http.MethodGet, "/twins/"+id, nil, &tw)
	return tw.Properties.Reported
}

type methodResult struct {
	Status  int             `json:"status"`
	Payload json.RawMessage `json:"payload"`
}

// invoke calls a direct method and returns the device's answer. The hub
// waits up to 10 s for the gateway to connect and subscribe.
func (c *serviceClient) invoke(t *testing.T, id, name, payload string) methodResult {
	t.Helper()
	var res methodResult
	c.do(t, http.MethodPost, "/twins/"+id+"/methods", map[string]any{
		"methodName": name, "payload": json.RawMessage(payload),
		"responseTimeoutInSeconds": 10, "connectTimeoutInSeconds": 10,
	}, &res)
	return res
}

// mbTelemetry is a hub message with its decoded body.
type mbTelemetry struct {
	hubsim.Telemetry
	decoded map[string]any
}

// waitTelemetry waits for a boiler-1 message whose body satisfies cond.
func (r *modbusRig) waitTelemetry(t *testing.T, what string, cond func(map[string]any) bool) mbTelemetry {
	t.Helper()
	var found mbTelemetry
	waitCond(t, 10*time.Second, what, func() (bool, string) {
		msgs := r.hub.Telemetry("boiler-1")
		for _, m := range msgs {
			var body map[string]any
			if err := json.Unmarshal(m.Body, &body); err != nil {
				t.Fatalf("telemetry body %q: %v", m.Body, err)
			}
			if cond(body) {
				found = mbTelemetry{m, body}
				return true, ""
			}
		}
		if len(msgs) == 0 {
			return false, "no telemetry"
		}
		return false, fmt.Sprintf("%d messages, last %s", len(msgs), msgs[len(msgs)-1].Body)
	})
	return found
}

// waitReported polls the twin (over REST) until cond holds.
func (r *modbusRig) waitReported(t *testing.T, what string, cond func(map[string]any) bool) map[string]any {
	t.Helper()
	var rep map[string]any
	waitCond(t, 10*time.Second, what, func() (bool, string) {
		rep = r.svc.reported(t, "boiler-1")
		b, _ := json.Marshal(rep)
		return cond(rep), "reported " + string(b)
	})
	return rep
}

// twinAck is a writable property's reported form (IoT Plug and Play).
type twinAck struct {
	Value any    `json:"value"`
	AC    int    `json:"ac"`
	AV    int64  `json:"av"`
	AD    string `json:"ad"`
}

func tryAck(rep map[string]any, field string) (twinAck, bool) {
	var a twinAck
	m, ok := rep[field].(map[string]any)
	if !ok {
		return a, false
	}
	b, _ := json.Marshal(m)
	return a, json.Unmarshal(b, &a) == nil
}

func ackOf(t *testing.T, rep map[string]any, field string) twinAck {
	t.Helper()
	a, ok := tryAck(rep, field)
	if !ok {
		t.Fatalf("reported %s = %v, not an acknowledgement object", field, rep[field])
	}
	return a
}

// pointOf returns a point of a body in the {"value": v, "unit": u} shape.
func pointOf(body map[string]any, name string) (float64, string) {
	m, _ := body[name].(map[string]any)
	v, _ := m["value"].(float64)
	u, _ := m["unit"].(string)
	return v, u
}

func checkPoint(t *testing.T, body map[string]any, name string, want float64, unit string) {
	t.Helper()
	v, u := pointOf(body, name)
	if !nearFloat(v, want) || u != unit {
		t.Errorf("telemetry %s = %v %q, want %v %q (body %v)", name, v, u, want, unit, body)
	}
}

func nearFloat(v any, want float64) bool {
	f, ok := v.(float64)
	return ok && math.Abs(f-want) <= 1e-9*math.Max(1, math.Abs(want))
}

func jsonEqual(a []byte, b string) bool {
	var x, y any
	return json.Unmarshal(a, &x) == nil && json.Unmarshal([]byte(b), &y) == nil && fmt.Sprint(x) == fmt.Sprint(y)
}

func medianDuration(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

// waitCond polls cond every 20 ms until it holds or timeout passes; then
// it fails the test with what and cond's last description of the state.
func waitCond(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s: %s", timeout, what, state)
		}
		time.Sleep(20 * time.Millisecond) // polling interval, bounded by the deadline
	}
}

// ---- device side ----

// e2eSlave is a Modbus TCP slave (simonvetter/modbus) for unit 1 that
// keeps its memory under a mutex and counts and timestamps writes.
type e2eSlave struct {
	addr string
	srv  *sv.ModbusServer

	mu        sync.Mutex
	coils     [16]bool
	input     [8]uint16
	holding   [256]uint16
	writes    map[string]int       // write requests by "coil N" / "holding N"
	writtenAt map[string]time.Time // the last one's arrival
	failCoil  map[uint16]error     // exception answered to writes of these coils
}

func startE2ESlave(t *testing.T) *e2eSlave {
	t.Helper()
	s := &e2eSlave{writes: map[string]int{}, writtenAt: map[string]time.Time{}, failCoil: map[uint16]error{}}
	var lastErr error
	for range 10 { // the port may be taken between probing and listening
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		srv, err := sv.NewServer(&sv.ServerConfiguration{
			URL: "tcp://" + addr, Timeout: 30 * time.Second, MaxClients: 4,
			Logger: log.New(io.Discard, "", 0),
		}, s)
		if err != nil {
			t.Fatal(err)
		}
		if lastErr = srv.Start(); lastErr == nil {
			s.addr, s.srv = addr, srv
			t.Cleanup(s.stop)
			return s
		}
	}
	t.Fatalf("start Modbus slave: %v", lastErr)
	return nil
}

func fits(addr, qty uint16, size int) bool { return int(addr)+int(qty) <= size }

func (s *e2eSlave) wrote(table string, addr uint16) {
	k := fmt.Sprintf("%s %d", table, addr)
	s.writes[k]++
	s.writtenAt[k] = time.Now()
}

func (s *e2eSlave) HandleCoils(req *sv.CoilsRequest) ([]bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if req.UnitId != 1 {
		return nil, sv.ErrGWTargetFailedToRespond
	}
	if !fits(req.Addr, req.Quantity, len(s.coils)) {
		return nil, sv.ErrIllegalDataAddress
	}
	if !req.IsWrite {
		return slices.Clone(s.coils[req.Addr : req.Addr+req.Quantity]), nil
	}
	for i := range req.Args {
		s.wrote("coil", req.Addr+uint16(i))
	}
	for i := range req.Args {
		if err := s.failCoil[req.Addr+uint16(i)]; err != nil {
			return nil, err
		}
	}
	copy(s.coils[req.Addr:], req.Args)
	return nil, nil
}

func (s *e2eSlave) HandleDiscreteInputs(req *sv.DiscreteInputsRequest) ([]bool, error) {
	return nil, sv.ErrIllegalDataAddress
}

func (s *e2eSlave) HandleHoldingRegisters(req *sv.HoldingRegistersRequest) ([]uint16, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if req.UnitId != 1 {
		return nil, sv.ErrGWTargetFailedToRespond
	}
	if !fits(req.Addr, req.Quantity, len(s.holding)) {
		return nil, sv.ErrIllegalDataAddress
	}
	if !req.IsWrite {
		return slices.Clone(s.holding[req.Addr : req.Addr+req.Quantity]), nil
	}
	for i := range req.Args {
		s.wrote("holding", req.Addr+uint16(i))
	}
	copy(s.holding[req.Addr:], req.Args)
	return nil, nil
}

func (s *e2eSlave) HandleInputRegisters(req *sv.InputRegistersRequest) ([]uint16, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if req.UnitId != 1 {
		return nil, sv.ErrGWTargetFailedToRespond
	}
	if !fits(req.Addr, req.Quantity, len(s.input)) {
		return nil, sv.ErrIllegalDataAddress
	}
	return slices.Clone(s.input[req.Addr : req.Addr+req.Quantity]), nil
}

func (s *e2eSlave) setInput(addr int, v uint16) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.input[addr] = v
}

// stop closes the listener and every client connection (idempotent).
func (s *e2eSlave) stop() { _ = s.srv.Stop() }

func (s *e2eSlave) setHolding(addr int, v uint16) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.holding[addr] = v
}

// bumpInput increments an input register and returns its new value.
func (s *e2eSlave) bumpInput(addr int) uint16 {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.input[addr]++
	return s.input[addr]
}

func (s *e2eSlave) holdingReg(addr int) uint16 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.holding[addr]
}

func (s *e2eSlave) coil(addr int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.coils[addr]
}

func (s *e2eSlave) regWrites(addr int) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.writes[fmt.Sprintf("holding %d", addr)]
}

func (s *e2eSlave) coilWrites(addr int) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.writes[fmt.Sprintf("coil %d", addr)]
}

func (s *e2eSlave) lastWrite(reg int) time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.writtenAt[fmt.Sprintf("holding %d", reg)]
}

func (s *e2eSlave) totalWrites() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, c := range s.writes {
		n += c
	}
	return n
}
