package northbound

import (
	"context"
	"strconv"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/edgegw/edgegw"
	"github.com/edgegw/edgegw/identity"
)

// mqtt profile (no twin to read): a desired document whose write was
// running when the connection dropped, and that then comes back 503, is
// retried on the new session after its back-off.
func TestDesiredRetrySurvivesReconnect(t *testing.T) {
	port := startMosquitto(t, "")
	url := "tcp://127.0.0.1:" + strconv.Itoa(port)
	release := make(chan struct{})
	d := &funcDownlink{fn: func(ctx context.Context, n int, cmd edgegw.Command) edgegw.Result {
		if cmd.Kind == edgegw.Desired && n == 1 {
			<-release
			return edgegw.Result{Status: 503}
		}
		return edgegw.Result{Status: 200}
	}}
	cfg := Config{Profile: ProfileMQTT, Host: "127.0.0.1", Port: port, Insecure: true,
		BackoffMin: 50 * time.Millisecond, BackoffMax: 100 * time.Millisecond,
		DesiredRetryMin: 100 * time.Millisecond, DesiredRetryMax: 200 * time.Millisecond}
	p, err := New(cfg, []identity.Config{{ID: "dev1"}}, newMemQueue(), d, nil)
	if err != nil {
		t.Fatal(err)
	}
	stop := runPool(t, p)
	defer stop()
	eventually(t, 10*time.Second, "connected", func() bool { return p.Status()[0].Connected })
	sub := newSubscriber(t, url, "nothing/#", func(string) string { return "" })
	if tok := sub.c.Publish("devices/dev1/desired", 1, false, `{"setpoint":1,"$version":5}`); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	eventually(t, 10*time.Second, "first attempt running", func() bool { return len(d.versions()) == 1 })
	// Take over the client id: mosquitto drops the pool's connection.
	o := mqtt.NewClientOptions().AddBroker(url).SetClientID("dev1").SetAutoReconnect(false)
	c := mqtt.NewClient(o)
	if tok := c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	defer c.Disconnect(0)
	eventually(t, 10*time.Second, "reconnected", func() bool { return p.Status()[0].Reconnects >= 1 && p.Status()[0].Connected })
	close(release) // the old session's write ends 503
	eventually(t, 5*time.Second, "the 503'd version retried (due after 100-200ms)", func() bool { return len(d.versions()) >= 2 })
}
