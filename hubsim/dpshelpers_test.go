package hubsim

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// startFleet starts n hubs and a DPS linked to them, all under one CA.
func startFleet(t testing.TB, n int, mods ...func(*DPS)) (*DPS, []*Hub) {
	t.Helper()
	ca, err := NewCA("fleet CA")
	if err != nil {
		t.Fatal(err)
	}
	hubs := make([]*Hub, n)
	d := &DPS{CA: ca}
	for i := range hubs {
		hubs[i] = startHub(t, func(h *Hub) { h.CA = ca; h.HostName = fmt.Sprintf("hub%d.example", i+1) })
		d.Hubs = append(d.Hubs, LinkedHub{Hub: hubs[i]})
	}
	for _, m := range mods {
		m(d)
	}
	if err := d.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := d.Close(); err != nil {
			t.Error(err)
		}
	})
	return d, hubs
}

// dpsClient is a paho client speaking the DPS device protocol.
type dpsClient struct {
	paho.Client
	regID string
	mu    sync.Mutex
	resp  map[string]chan dpsResponse // by rid
	rid   int
}

type dpsResponse struct {
	status     int
	retryAfter string
	body       map[string]any
	raw        string
}

// dialDPS connects as regID with a SAS token from key, or with cert.
func dialDPS(t testing.TB, d *DPS, regID, key string, cert *tls.Certificate) *dpsClient {
	t.Helper()
	c, err := tryDialDPS(t, d, d.IDScope, regID, key, cert)
	if err != nil {
		t.Fatalf("dps connect %s: %v", regID, err)
	}
	return c
}

// dialDPSToken connects as regID with a ready SAS token.
func dialDPSToken(t testing.TB, d *DPS, regID, token string) *dpsClient {
	t.Helper()
	c, err := dialDPSWith(t, d, d.IDScope, regID, token, nil)
	if err != nil {
		t.Fatalf("dps connect %s: %v", regID, err)
	}
	return c
}

func tryDialDPS(t testing.TB, d *DPS, scope, regID, key string, cert *tls.Certificate) (*dpsClient, error) {
	t.Helper()
	var tok string
	if key != "" {
		var err error
		if tok, err = NewSAS(scope+"/registrations/"+regID, "registration", key, time.Now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	return dialDPSWith(t, d, scope, regID, tok, cert)
}

func dialDPSWith(t testing.TB, d *DPS, scope, regID, token string, cert *tls.Certificate) (*dpsClient, error) {
	t.Helper()
	dc := &dpsClient{regID: regID, resp: map[string]chan dpsResponse{}}
	tlsCfg := &tls.Config{RootCAs: d.certs.Pool(), ServerName: "localhost"}
	if cert != nil {
		tlsCfg.Certificates = []tls.Certificate{*cert}
	}
	opts := paho.NewClientOptions().
		AddBroker("ssl://" + d.MQTTAddress()).
		SetClientID(regID).
		SetUsername(scope + "/registrations/" + regID + "/api-version=2019-03-31&ClientVersion=go-test").
		SetProtocolVersion(4).
		SetCleanSession(true).
		SetAutoReconnect(false).
		SetConnectTimeout(10 * time.Second).
		SetTLSConfig(tlsCfg).
		SetDefaultPublishHandler(dc.onMessage)
	if token != "" {
		opts.SetPassword(token)
	}
	dc.Client = paho.NewClient(opts)
	tok := dc.Connect()
	if !tok.WaitTimeout(15 * time.Second) {
		return nil, errors.New("connect timed out")
	}
	if err := tok.Error(); err != nil {
		return nil, err
	}
	t.Cleanup(func() { dc.Disconnect(0) })
	st := dc.Subscribe(dpsResFilter, 1, nil)
	if !st.WaitTimeout(10*time.Second) || st.Error() != nil {
		t.Fatalf("subscribe: %v", st.Error())
	}
	return dc, nil
}

func (c *dpsClient) onMessage(_ paho.Client, m paho.Message) {
	rest, ok := strings.CutPrefix(m.Topic(), dpsResPfx)
	if !ok {
		return
	}
	status, query, _ := strings.Cut(rest, "/?")
	q, _ := url.ParseQuery(query)
	r := dpsResponse{retryAfter: q.Get("retry-after"), raw: string(m.Payload())}
	r.status, _ = strconv.Atoi(status)
	_ = json.Unmarshal(m.Payload(), &r.body)
	c.mu.Lock()
	ch := c.resp[q.Get("$rid")]
	c.mu.Unlock()
	if ch != nil {
		ch <- r
	}
}

// request publishes to topic (with a fresh $rid appended) and waits for
// the response.
func (c *dpsClient) request(t testing.TB, topic, body string) dpsResponse {
	t.Helper()
	c.mu.Lock()
	c.rid++
	rid := "r" + strconv.Itoa(c.rid)
	ch := make(chan dpsResponse, 1)
	c.resp[rid] = ch
	c.mu.Unlock()
	tok := c.Publish(strings.Replace(topic, "{rid}", rid, 1), 1, false, body)
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("publish %s: %v", topic, tok.Error())
	}
	select {
	case r := <-ch:
		return r
	case <-time.After(15 * time.Second):
		t.Fatalf("no response to %s", topic)
		return dpsResponse{}
	}
}

// register registers and polls until the operation ends; it returns the
// final response (the register's own when it is not 202).
func (c *dpsClient) register(t testing.TB) dpsResponse {
	t.Helper()
	r := c.request(t, dpsRegisterPfx+"?$rid={rid}", `{"registrationId":"`+c.regID+`"}`)
	for i := 0; r.status == 202 && i < 50; i++ {
		op, _ := r.body["operationId"].(string)
		if op == "" {
			t.Fatalf("202 without operationId: %s", r.raw)
		}
		r = c.request(t, dpsPollPfx+"?$rid={rid}&operationId="+op, " ")
		if r.status == 202 {
			time.Sleep(20 * time.Millisecond) // the test DPS assigns at once; not retry-after
		}
	}
	return r
}

// state returns the registrationState of a 200 response.
func (r dpsResponse) state(t testing.TB) RegistrationState {
	t.Helper()
	var op operationStatus
	if err := json.Unmarshal([]byte(r.raw), &op); err != nil || op.RegistrationState == nil {
		t.Fatalf("response %d %s: no registrationState (%v)", r.status, r.raw, err)
	}
	return *op.RegistrationState
}

// dialAssigned connects to the hub a registration assigned, as a device
// does: username and SAS audience from assignedHub, key as given.
func dialAssigned(t testing.TB, d *DPS, st RegistrationState, key string, cert *tls.Certificate) (*devClient, error) {
	t.Helper()
	h, ok := d.HubFor(st.AssignedHub)
	if !ok {
		t.Fatalf("assignedHub %q is not linked", st.AssignedHub)
	}
	o := dialOpts{username: st.AssignedHub + "/" + st.DeviceID + "/?api-version=2021-04-12", cert: cert}
	if cert == nil {
		tok, err := NewSAS(st.AssignedHub+"/devices/"+st.DeviceID, "", key, time.Now().Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		o.password = tok
	}
	return dial(t, h, st.DeviceID, o)
}
