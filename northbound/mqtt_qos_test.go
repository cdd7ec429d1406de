package northbound

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/edgegw/edgegw"
	"github.com/edgegw/edgegw/identity"
)

// With the mqtt profile every command topic is subscribed at QoS 1, so a
// broker delivers a QoS 1 method call, desired patch or C2D message at QoS
// 1 (with redelivery), not downgraded to QoS 0. mosquitto logs each
// subscription with the QoS it granted: "<client> <qos> <filter>".
func TestMQTTProfileSubscribesQoS1Mosquitto(t *testing.T) {
	logFile := filepath.Join(t.TempDir(), "mosquitto.log")
	port := startMosquitto(t, "log_dest file "+logFile+"\nlog_type subscribe\n")
	rec := newRecorder()
	cfg := Config{Profile: ProfileMQTT, Host: "127.0.0.1", Port: port, Insecure: true}
	p, err := New(cfg, []identity.Config{{ID: "dev1"}}, newMemQueue(), rec, nil)
	if err != nil {
		t.Fatal(err)
	}
	runPool(t, p)
	eventually(t, 10*time.Second, "connected", func() bool { return p.Status()[0].Connected })
	want := []string{"devices/dev1/commands/#", "devices/dev1/desired", "devices/dev1/c2d"}
	var log string
	eventually(t, 10*time.Second, "three subscriptions in mosquitto's log", func() bool {
		b, _ := os.ReadFile(logFile)
		log = string(b)
		return strings.Count(log, " dev1 ") >= len(want)
	})
	for _, f := range want {
		if !strings.Contains(log, " dev1 1 "+f+"\n") {
			t.Errorf("%s not subscribed at QoS 1; mosquitto log:\n%s", f, log)
		}
	}
	// And a QoS 1 method call arrives (and is answered) as before.
	sub := newSubscriber(t, "tcp://127.0.0.1:"+strconv.Itoa(port), "devices/dev1/responses/#", func(string) string { return "r" })
	if tok := sub.c.Publish("devices/dev1/commands/echo/1", 1, false, `{}`); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("publish: %v", tok.Error())
	}
	if c := rec.next(t, edgegw.Method); c.Name != "echo" {
		t.Fatalf("method %+v", c)
	}
	eventually(t, 5*time.Second, "method response", func() bool { return len(sub.get("r")) == 1 })
}
