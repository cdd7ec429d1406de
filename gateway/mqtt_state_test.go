package gateway

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/edgegw/edgegw/internal/testpeer"
)

const mqttStateConfig = `
state_dir: %s
log: {level: warn}
hub:
  profile: mqtt
  host: 127.0.0.1
  port: %s
  insecure: true
  topics:
    telemetry: "plant/{id}/telemetry"
    reported: "plant/{id}/state"
    desired: "plant/{id}/desired"
identities:
  - {id: boiler-1}
southbound:
  - name: plc
    modbus:
      tcp: %s
      timeout: 500ms
      devices:
        - name: boiler
          unit: 1
          poll: 50ms
          points:
            - {name: counter, table: input, address: 5}
            - {name: setpoint, table: holding, address: 100, type: int16, scale: 0.1, writable: true, unit: degC}
mapping:
  devices:
    - adapter: plc
      device: boiler
      identity: boiler-1
      points:
        - {name: counter}
        - {name: setpoint, property: true, writable: true, type: float, min: 40, max: 90}
`

// TestMQTTProfileStateAckOnce: with the mqtt profile, where every reported
// patch reaches subscribers as a message (no twin merges them), one desired
// update is acknowledged once on the state topic: the poll that then reads
// the written value reports nothing new. mosquitto is the broker, a
// third-party Modbus slave the PLC.
func TestMQTTProfileStateAckOnce(t *testing.T) {
	addr := testpeer.StartMosquitto(t, func(port int) string {
		return "listener " + strconv.Itoa(port) + " 127.0.0.1\nallow_anonymous true\npersistence false\n"
	})
	_, port, _ := strings.Cut(addr, ":")
	s := startE2ESlave(t)
	cfg, err := Parse("mqtt-state.yaml", fmt.Appendf(nil, mqttStateConfig, t.TempDir(), port, s.addr))
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var states, telemetry []string
	o := mqtt.NewClientOptions().AddBroker("tcp://" + addr).SetClientID("cloud").SetAutoReconnect(false)
	c := mqtt.NewClient(o)
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect: %v", tok.Error())
	}
	defer c.Disconnect(100)
	tok := c.Subscribe("plant/#", 1, func(_ mqtt.Client, m mqtt.Message) {
		mu.Lock()
		defer mu.Unlock()
		switch {
		case strings.HasSuffix(m.Topic(), "/state"):
			states = append(states, string(m.Payload()))
		case strings.HasSuffix(m.Topic(), "/telemetry"):
			telemetry = append(telemetry, string(m.Payload()))
		}
	})
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	startGateway(t, cfg)
	count := func(list *[]string, sub string) (int, string) {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, m := range *list {
			if strings.Contains(m, sub) {
				n++
			}
		}
		return n, strings.Join(*list, "\n")
	}
	// The first poll reports the setpoint as set on the device.
	waitCond(t, 20*time.Second, "the first state report", func() (bool, string) {
		n, all := count(&states, `"ac":203`)
		return n >= 1, all
	})
	if tok := c.Publish("plant/boiler-1/desired", 1, false, `{"setpoint": 55, "$version": 1}`); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("publish desired: %v", tok.Error())
	}
	const ack = `"setpoint":{"value":55,"ac":200,"av":1,"ad":"applied"}`
	waitCond(t, 20*time.Second, "the acknowledgement", func() (bool, string) {
		n, all := count(&states, ack)
		return n >= 1, all
	})
	if v := s.holdingReg(regSetpoint); v != 550 {
		t.Fatalf("holding %d = %d, want 550", regSetpoint, v)
	}
	// Two polls that read the counter after the write also read the
	// setpoint: everything they report has reached the broker once their
	// telemetry has (one stream, in order).
	for range 2 {
		n := s.bumpInput(5)
		waitCond(t, 20*time.Second, fmt.Sprintf("telemetry with counter %d", n), func() (bool, string) {
			k, all := count(&telemetry, fmt.Sprintf(`"counter":%d`, n))
			return k >= 1, all
		})
	}
	if n, all := count(&states, `"av":1`); n != 1 {
		t.Fatalf("%d state messages for desired version 1, want 1:\n%s", n, all)
	}
}
