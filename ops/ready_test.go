package ops

import (
	"strings"
	"testing"
	"time"
)

func TestEvaluate(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	at := func(d time.Duration) *time.Time { x := t0.Add(d); return &x }
	base := func() Status {
		return Status{Time: t0, StartTime: t0.Add(-time.Hour)}
	}
	stall := 2 * time.Minute
	cases := []struct {
		name string
		st   func() Status
		want []string // reason kinds
	}{
		{"idle identity: nothing waiting", func() Status {
			s := base()
			s.Identities = []Identity{{ID: "a", LastAck: at(-time.Hour)}}
			return s
		}, nil},
		{"fresh message after a quiet hour", func() Status {
			s := base()
			s.Identities = []Identity{{ID: "a", Queued: 1, LastAck: at(-time.Hour), OldestQueued: at(-time.Second)}}
			return s
		}, nil},
		{"backlog draining: acks keep coming", func() Status {
			s := base()
			s.Identities = []Identity{{ID: "a", Queued: 5000, Connected: true, LastAck: at(-time.Second), OldestQueued: at(-3 * time.Hour)}}
			return s
		}, nil},
		{"hub silent for longer than stall_after", func() Status {
			s := base()
			s.Identities = []Identity{{ID: "a", Queued: 7, LastAck: at(-3 * time.Minute), OldestQueued: at(-3 * time.Minute),
				LastError: &LastError{Message: "connect: refused", Time: t0}}, {ID: "b"}}
			return s
		}, []string{IdentityStalled}},
		{"never acknowledged since start", func() Status {
			s := base()
			s.StartTime = t0.Add(-5 * time.Minute)
			s.Identities = []Identity{{ID: "a", Queued: 1, OldestQueued: at(-time.Hour)}}
			return s
		}, []string{IdentityStalled}},
		{"just started with an old backlog", func() Status {
			s := base()
			s.StartTime = t0.Add(-10 * time.Second)
			s.Identities = []Identity{{ID: "a", Queued: 1, OldestQueued: at(-time.Hour)}}
			return s
		}, nil},
		{"disk full", func() Status {
			s := base()
			free := int64(1000)
			s.Buffer = Buffer{DiskFull: true, DiskFreeBytes: &free}
			return s
		}, []string{DiskFull}},
		{"modbus: every device down", func() Status {
			s := base()
			s.Adapters = []Adapter{{Name: "plc", Modbus: &Modbus{Bus: "tcp x", Connected: true, Devices: []ModbusDevice{{State: "down"}, {State: "down"}}}}}
			return s
		}, []string{AdapterUnreachable}},
		{"modbus: bus not connected", func() Status {
			s := base()
			s.Adapters = []Adapter{{Name: "plc", Modbus: &Modbus{Bus: "tcp x", Devices: []ModbusDevice{{State: "disconnected"}}}}}
			return s
		}, []string{AdapterUnreachable}},
		{"modbus: one device answers", func() Status {
			s := base()
			s.Adapters = []Adapter{{Name: "plc", Modbus: &Modbus{Connected: true, Devices: []ModbusDevice{{State: "down"}, {State: "up"}}}}}
			return s
		}, nil},
		{"modbus: not yet polled", func() Status {
			s := base()
			s.Adapters = []Adapter{{Name: "plc", Modbus: &Modbus{Connected: true, Devices: []ModbusDevice{{State: "unknown"}}}}}
			return s
		}, nil},
		{"opcua: server refuses the session", func() Status {
			s := base()
			s.Adapters = []Adapter{{Name: "opc", OPCUA: &OPCUA{Endpoint: "opc.tcp://x:4840", ConnectErrors: 2,
				LastError: &LastError{Message: "server certificate is not trusted", Time: t0}, Devices: []OPCUADevice{{Name: "boiler"}}}}}
			return s
		}, []string{AdapterUnreachable}},
		{"opcua: session lost, reconnecting", func() Status {
			s := base()
			s.Adapters = []Adapter{{Name: "opc", OPCUA: &OPCUA{Connects: 1, Disconnects: 1, Devices: []OPCUADevice{{Name: "boiler"}}}}}
			return s
		}, []string{AdapterUnreachable}},
		{"opcua: connected after failures", func() Status {
			s := base()
			s.Adapters = []Adapter{{Name: "opc", OPCUA: &OPCUA{Connected: true, Connects: 1, ConnectErrors: 5, Devices: []OPCUADevice{{Name: "boiler"}}}}}
			return s
		}, nil},
		{"opcua: first attempt under way", func() Status {
			s := base()
			s.Adapters = []Adapter{{Name: "opc", OPCUA: &OPCUA{Devices: []OPCUADevice{{Name: "boiler"}}}}}
			return s
		}, nil},
		{"serial port cannot be opened", func() Status {
			s := base()
			s.Adapters = []Adapter{{Name: "tty", Serial: &Serial{OpenFailures: 3}}, {Name: "lan", LAN: &LAN{}}}
			return s
		}, []string{AdapterUnreachable}},
		{"everything at once", func() Status {
			s := base()
			s.Identities = []Identity{{ID: "a", Queued: 1, LastAck: at(-time.Hour), OldestQueued: at(-time.Hour)}}
			s.Buffer.DiskFull = true
			s.Adapters = []Adapter{{Name: "tty", Serial: &Serial{OpenFailures: 1}}}
			return s
		}, []string{IdentityStalled, DiskFull, AdapterUnreachable}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st := c.st()
			r := Evaluate(&st, stall)
			var got []string
			for _, x := range r.Reasons {
				got = append(got, x.Kind)
				if x.Detail == "" {
					t.Errorf("reason %s without detail", x.Kind)
				}
			}
			if strings.Join(got, ",") != strings.Join(c.want, ",") || r.Ready != (len(c.want) == 0) {
				t.Errorf("ready %v, reasons %+v; want %v", r.Ready, r.Reasons, c.want)
			}
		})
	}
}

// An OPC UA adapter's reason names the endpoint and the error that stands.
func TestEvaluateOPCUADetail(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	st := Status{Time: t0, StartTime: t0.Add(-time.Hour), Adapters: []Adapter{{Name: "opc", OPCUA: &OPCUA{
		Endpoint: "opc.tcp://10.0.0.5:4840", ConnectErrors: 1, Devices: []OPCUADevice{{Name: "a"}, {Name: "b"}},
		LastError: &LastError{Message: "server certificate is not trusted", Time: t0}}}}}
	r := Evaluate(&st, time.Minute)
	if len(r.Reasons) != 1 {
		t.Fatalf("reasons %+v", r.Reasons)
	}
	if x := r.Reasons[0]; x.Subject != "opc" || x.Detail != "not connected to opc.tcp://10.0.0.5:4840; none of 2 devices reachable: server certificate is not trusted" {
		t.Errorf("reason %+v", x)
	}
}
