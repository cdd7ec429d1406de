package ops

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/edgegw/edgegw"
	"github.com/edgegw/edgegw/internal/testpeer"
)

// richStatus has every section filled, as a gateway with all adapter kinds
// after some trouble would report.
func richStatus() Status {
	t0 := time.Now().UTC()
	ago := func(d time.Duration) *time.Time { x := t0.Add(-d); return &x }
	age, free, du := 42.5, int64(1<<30), int64(5<<20)
	lat := NewHistogram([]float64{0.001, 0.01, 0.1}, []uint64{5, 3, 1, 1}, 0.4)
	var cmds CommandLog
	cmds.Record(CommandRecord{Time: t0, Identity: "pump-1", Kind: "method", Name: "start", Status: 200, Seconds: 0.01})
	cmds.Record(CommandRecord{Time: t0, Identity: "pump-1", Kind: "desired", Status: 503, Seconds: 0.5})
	return Status{
		Time: t0, StartTime: t0.Add(-time.Hour), UptimeSeconds: 3600,
		Identities: []Identity{{
			ID: "pump-1", Connected: true, ConnectedSince: ago(time.Minute), Queued: 3, QueuedBytes: 900,
			OldestQueued: ago(42 * time.Second), OldestAgeSeconds: &age, InFlight: 2, LastAck: ago(time.Second),
			Sent: 100, Resent: 4, Acknowledged: 96, BufferDrops: map[string]uint64{"expired": 2},
			Reconnects: 2, ReconnectsByReason: map[string]uint64{"connection_lost": 1, "token_renewal": 1},
			TokenRenewals: 1, TokenExpiry: ago(-time.Hour),
			LastError: &LastError{Message: `connect "x": refused`, Time: t0.Add(-2 * time.Minute), Cleared: ago(time.Minute)},
		}, {ID: "gw-1/modbus"}},
		Buffer: Buffer{Records: 3, StoredBytes: 900, MaxBytes: 1 << 30, DiskUsageBytes: &du, DiskFreeBytes: &free,
			Appended: 103, Commits: 150, AppendCommits: 40, Drops: map[string]uint64{"expired": 2, "full": 0}},
		Adapters: []Adapter{
			{Name: "lan", Kind: "lanmqtt", LAN: &LAN{Clients: 2, Connects: 3, PublishesReceived: 10, PublishesStored: 9,
				PublishesRefused: map[string]uint64{"too_large": 1, "not_stored": 0}}},
			{Name: "plc", Kind: "modbus", Modbus: &Modbus{Bus: "tcp 127.0.0.1:502", Connected: true, Connects: 1, Devices: []ModbusDevice{{
				Name: "boiler", Unit: 1, State: "up", Requests: 10, Errors: map[string]uint64{"timeout": 1, "crc": 0},
				Exceptions: map[string]uint64{"2": 3}, Latency: lat}}}},
			{Name: "opc", Kind: "opcua", OPCUA: &OPCUA{Endpoint: "opc.tcp://127.0.0.1:4840/UA", Security: "Basic256Sha256/SignAndEncrypt",
				Connected: true, Connects: 2, ConnectErrors: 3, Disconnects: 1, UntrustedCertificate: "9F1C02E2",
				LastError: &LastError{Message: "server certificate is not trusted", Time: t0.Add(-time.Minute), Cleared: ago(time.Second)},
				Devices: []OPCUADevice{{Name: "boiler", Mode: "subscribe", Values: 40, Readings: 20, SubmitErrors: 1,
					BadValues: map[string]uint64{"BadSensorFailure": 2, "0x80AB0000": 1, "0x80CD0000": 2}, Uncertain: 3, TypeErrors: 1, Duplicates: 4,
					Refused: map[string]uint64{"BadNodeIdUnknown": 1}, Writes: 5, WriteErrors: 1, Calls: 6, CallErrors: 2}}}},
			{Name: "tty", Kind: "serial", Serial: &Serial{Open: true, Lines: 5, Garbage: 1}},
			{Name: "sim", Kind: "simulator", Simulator: &Simulator{Readings: 7}},
		},
		Commands: cmds.Snapshot(),
	}
}

func newTestServer(t *testing.T, cfg Config, st func() Status) (*Server, chan struct{}) {
	t.Helper()
	cfg.SetDefaults()
	started := make(chan struct{})
	p := NewPoints(time.Second)
	p.Observe(edgegw.Reading{Adapter: "sim", Device: "boiler", Time: time.Now(), Points: []edgegw.Point{{Name: "t", Value: edgegw.Float(1)}}})
	return NewServer(cfg, st, started, p, nil), started
}

func get(t *testing.T, h http.Handler, path string) *httptest.ResponseRecorder {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
	return rec
}

// TestMetricsLint lints /metrics of a status with every section with the
// real promtool, and checks a few series.
func TestMetricsLint(t *testing.T) {
	promtool := testpeer.RequireTool(t, "promtool")
	s, started := newTestServer(t, Config{}, richStatus)
	close(started)
	rec := get(t, s.Handler(), "/metrics")
	if rec.Code != 200 {
		t.Fatalf("GET /metrics: %d %s", rec.Code, rec.Body)
	}
	body := rec.Body.String()
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = strings.NewReader(body)
	if out, err := cmd.CombinedOutput(); err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Fatalf("promtool check metrics: %v\n%s", err, out)
	}
	for _, want := range []string{
		`edgegw_identity_connected{identity="pump-1"} 1`,
		`edgegw_identity_oldest_queued_age_seconds{identity="pump-1"} 42.5`,
		`edgegw_identity_reconnects_total{identity="pump-1",reason="connection_lost"} 1`,
		`edgegw_identity_messages_resent_total{identity="pump-1"} 4`,
		`edgegw_identity_error{identity="pump-1"} 0`,
		`edgegw_buffer_dropped_records_total{reason="expired"} 2`,
		`edgegw_buffer_disk_free_bytes 1.073741824e+09`,
		`edgegw_lan_publishes_refused_total{adapter="lan",reason="too_large"} 1`,
		`edgegw_modbus_device_exceptions_total{adapter="plc",code="2",device="boiler"} 3`,
		`edgegw_modbus_device_timeouts_total{adapter="plc",device="boiler"} 1`,
		`edgegw_modbus_device_request_duration_seconds_bucket{adapter="plc",device="boiler",le="0.01"} 8`,
		`edgegw_modbus_device_request_duration_seconds_count{adapter="plc",device="boiler"} 10`,
		`edgegw_serial_garbage_lines_total{adapter="tty"} 1`,
		`edgegw_opcua_connected{adapter="opc"} 1`,
		`edgegw_opcua_connect_errors_total{adapter="opc"} 3`,
		`edgegw_opcua_disconnects_total{adapter="opc"} 1`,
		`edgegw_opcua_error{adapter="opc"} 0`,
		`edgegw_opcua_untrusted_certificate{adapter="opc"} 1`,
		`edgegw_opcua_device_values_total{adapter="opc",device="boiler"} 40`,
		`edgegw_opcua_device_readings_refused_total{adapter="opc",device="boiler"} 1`,
		`edgegw_opcua_device_bad_values_total{adapter="opc",device="boiler",status="BadSensorFailure"} 2`,
		`edgegw_opcua_device_bad_values_total{adapter="opc",device="boiler",status="other"} 3`,
		`edgegw_opcua_device_refused_items_total{adapter="opc",device="boiler",status="BadNodeIdUnknown"} 1`,
		`edgegw_opcua_device_duplicate_values_total{adapter="opc",device="boiler"} 4`,
		`edgegw_opcua_device_call_errors_total{adapter="opc",device="boiler"} 2`,
		`edgegw_commands_total{kind="desired",status="503"} 1`,
		`edgegw_command_duration_seconds_count{kind="method"} 1`,
		`edgegw_ready 1`,
		`edgegw_plot_points 1`,
		`go_goroutines `,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if t.Failed() {
		t.Logf("/metrics:\n%s", body)
	}
}

var snake = regexp.MustCompile(`^[a-z0-9]+(_[a-z0-9]+)*$`)

func TestStatusSchema(t *testing.T) {
	s, started := newTestServer(t, Config{}, richStatus)
	h := s.Handler()
	if rec := get(t, h, "/readyz"); rec.Code != 503 || !strings.Contains(rec.Body.String(), `"starting"`) {
		t.Errorf("readyz before start: %d %s", rec.Code, rec.Body)
	}
	if rec := get(t, h, "/healthz"); rec.Code != 503 {
		t.Errorf("healthz before start: %d", rec.Code)
	}
	close(started)
	s.mu.Lock()
	s.cached = nil // the cache holds the snapshot from before the start
	s.mu.Unlock()
	if rec := get(t, h, "/healthz"); rec.Code != 200 || rec.Body.String() != "ok\n" {
		t.Errorf("healthz: %d %q", rec.Code, rec.Body)
	}
	if rec := get(t, h, "/readyz"); rec.Code != 200 || !strings.Contains(rec.Body.String(), `"ready": true`) {
		t.Errorf("readyz: %d %s", rec.Code, rec.Body)
	}
	rec := get(t, h, "/status")
	var raw map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &raw); err != nil {
		t.Fatal(err)
	}
	// Every key is snake_case (but OPC UA status names, which are data:
	// BadSensorFailure), and a time never known is absent.
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch v := v.(type) {
		case map[string]any:
			byStatus := strings.HasSuffix(path, ".bad_values") || strings.HasSuffix(path, ".refused_items")
			for k, x := range v {
				if !snake.MatchString(k) && !byStatus {
					t.Errorf("key %s.%s is not snake_case", path, k)
				}
				walk(path+"."+k, x)
			}
		case []any:
			for _, x := range v {
				walk(path+"[]", x)
			}
		case string:
			if strings.HasPrefix(v, "0001-01-01") {
				t.Errorf("%s is the zero time", path)
			}
		}
	}
	walk("", raw)
	ids := raw["identities"].([]any)
	if _, ok := ids[1].(map[string]any)["last_ack"]; ok {
		t.Errorf("an identity never acknowledged has last_ack: %v", ids[1])
	}
	for _, a := range raw["adapters"].([]any) {
		a := a.(map[string]any)
		if a["kind"] != "opcua" {
			continue
		}
		u := a["opcua"].(map[string]any)
		d := u["devices"].([]any)[0].(map[string]any)
		if u["untrusted_certificate"] != "9F1C02E2" || u["connect_errors"] != 3.0 || d["bad_values"].(map[string]any)["BadSensorFailure"] != 2.0 || d["readings_refused"] != 1.0 {
			t.Errorf("opcua adapter = %v", a)
		}
	}
	le := ids[0].(map[string]any)["last_error"].(map[string]any)
	if le["cleared"] == nil || le["message"] == nil || le["time"] == nil {
		t.Errorf("last_error = %v, want message, time and cleared", le)
	}
	if rec := get(t, h, "/points?since=x"); rec.Code != 400 {
		t.Errorf("points?since=x: %d", rec.Code)
	}
	if rec := get(t, h, "/points"); rec.Code != 200 || !strings.Contains(rec.Body.String(), `"point": "t"`) {
		t.Errorf("points: %d %s", rec.Code, rec.Body)
	}
}

func TestPageAndPprofSwitch(t *testing.T) {
	s, started := newTestServer(t, Config{}, richStatus)
	close(started)
	h := s.Handler()
	rec := get(t, h, "/")
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), "/assets/app.js") || !strings.Contains(rec.Header().Get("Content-Security-Policy"), "default-src 'self'") {
		t.Errorf("page: %d %v", rec.Code, rec.Header())
	}
	for _, p := range []string{"/assets/app.js", "/assets/style.css"} {
		if rec := get(t, h, p); rec.Code != 200 || rec.Body.Len() == 0 {
			t.Errorf("%s: %d", p, rec.Code)
		}
	}
	if rec := get(t, h, "/nope"); rec.Code != 404 {
		t.Errorf("/nope: %d", rec.Code)
	}
	if rec := get(t, h, "/debug/pprof/"); rec.Code != 404 {
		t.Errorf("pprof off by default, got %d", rec.Code)
	}
	on, started := newTestServer(t, Config{Pprof: true}, richStatus)
	close(started)
	if rec := get(t, on.Handler(), "/debug/pprof/goroutine?debug=1"); rec.Code != 200 || !strings.Contains(rec.Body.String(), "goroutine") {
		t.Errorf("pprof on: %d", rec.Code)
	}
}

// TestListenerLogs: the address is logged at start; a listener beyond
// loopback warns unless allow_remote says it is meant.
func TestListenerLogs(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	cfg := Config{Listen: "127.0.0.1:0"}
	cfg.SetDefaults()
	s := NewServer(cfg, richStatus, make(chan struct{}), NewPoints(0), log)
	addr, stop, err := s.Start(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get("http://" + addr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	stop()
	if !strings.Contains(buf.String(), "addr="+addr) || strings.Contains(buf.String(), "WARN") {
		t.Errorf("log:\n%s", buf.String())
	}
	for _, c := range []struct {
		addr  net.Addr
		allow bool
		warn  bool
	}{
		{&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)}, false, false},
		{&net.TCPAddr{IP: net.IPv6loopback}, false, false},
		{&net.TCPAddr{IP: net.IPv4zero}, false, true},
		{&net.TCPAddr{IP: net.IPv6unspecified}, false, true},
		{&net.TCPAddr{IP: net.IPv4(192, 0, 2, 7)}, false, true},
		{&net.TCPAddr{IP: net.IPv4(192, 0, 2, 7)}, true, false},
	} {
		buf.Reset()
		warnExposure(log, c.addr, c.allow)
		if got := strings.Contains(buf.String(), "level=WARN"); got != c.warn {
			t.Errorf("%v allow_remote %v: warned %v, want %v", c.addr, c.allow, got, c.warn)
		}
	}
}

func TestConfig(t *testing.T) {
	for _, c := range []struct {
		cfg  Config
		want string
	}{
		{Config{}, ""},
		{Config{Listen: "127.0.0.1:9470", StallAfter: time.Minute, PlotResolution: time.Second}, ""},
		{Config{Listen: "9470"}, "listen: must be host:port"},
		{Config{Listen: "127.0.0.1:99999"}, "listen: port must be a number from 0 to 65535"},
		{Config{Listen: "127.0.0.1:http"}, "listen: port must be a number from 0 to 65535"},
		{Config{Listen: "localhost:0"}, ""},
		{Config{StallAfter: -time.Second}, "stall_after: must be > 0"},
		{Config{PlotResolution: time.Hour}, "plot_resolution: must be between 1s and 1m"},
		{Config{PlotResolution: time.Millisecond}, "plot_resolution: must be between 1s and 1m"},
	} {
		c.cfg.SetDefaults()
		err := c.cfg.Validate()
		if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%+v: %v, want %q", c.cfg, err, c.want)
		}
	}
}
