package hubsim

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

type restClient struct {
	t     *testing.T
	h     *Hub
	c     *http.Client
	token string
}

func newRest(t *testing.T, h *Hub, policy string) *restClient {
	p, _ := h.Policy(policy)
	tok, err := NewSAS(h.HostName, p.Name, p.PrimaryKey, time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{TLSClientConfig: tlsFor(h, nil)}
	t.Cleanup(tr.CloseIdleConnections)
	return &restClient{t: t, h: h, c: &http.Client{Transport: tr, Timeout: 20 * time.Second}, token: tok}
}

// do sends a request and decodes a JSON answer into out (if not nil).
func (rc *restClient) do(method, path, body string, hdr map[string]string, out any) (int, http.Header) {
	rc.t.Helper()
	req, err := http.NewRequest(method, "https://"+rc.h.HTTPAddress()+path, strings.NewReader(body))
	if err != nil {
		rc.t.Fatal(err)
	}
	req.Header.Set("Authorization", rc.token)
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := rc.c.Do(req)
	if err != nil {
		rc.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			rc.t.Fatalf("%s %s: %v in %s", method, path, err, b)
		}
	}
	return resp.StatusCode, resp.Header
}

func TestRESTRegistry(t *testing.T) {
	h := startHub(t)
	rc := newRest(t, h, "iothubowner")
	var dev restDevice
	st, _ := rc.do("PUT", "/devices/dev%3A1?api-version=2021-04-12",
		`{"deviceId":"dev:1","status":"enabled","authentication":{"type":"sas","symmetricKey":{"primaryKey":"","secondaryKey":""}}}`, nil, &dev)
	if st != 200 || dev.DeviceID != "dev:1" || len(str(dev.Authentication.SymmetricKey.PrimaryKey)) != 44 || dev.ETag == "" {
		t.Fatalf("create: %d %+v", st, dev)
	}
	var e map[string]any
	if st, hdr := rc.do("PUT", "/devices/dev%3A1?api-version=2021-04-12", `{"deviceId":"dev:1"}`, nil, &e); st != 409 ||
		!strings.HasPrefix(e["Message"].(string), "ErrorCode:DeviceAlreadyExists;") || hdr.Get("iothub-errorcode") != "DeviceAlreadyExists" {
		t.Errorf("create twice: %d %v", st, e)
	}
	if st, _ := rc.do("GET", "/devices/nope?api-version=2021-04-12", "", nil, &e); st != 404 || !strings.HasPrefix(e["Message"].(string), "ErrorCode:DeviceNotFound;") {
		t.Errorf("get unknown: %d %v", st, e)
	}
	var list []restDevice
	if st, _ := rc.do("GET", "/devices/?api-version=2021-04-12", "", nil, &list); st != 200 || len(list) != 1 {
		t.Errorf("list: %d %v", st, list)
	}
	// Disable with a stale etag fails, with "*" works.
	if st, _ := rc.do("PUT", "/devices/dev%3A1", `{"deviceId":"dev:1","status":"disabled"}`, map[string]string{"If-Match": `"stale"`}, nil); st != 412 {
		t.Errorf("stale etag: %d", st)
	}
	if st, _ := rc.do("PUT", "/devices/dev%3A1", `{"deviceId":"dev:1","status":"disabled"}`, map[string]string{"If-Match": `"*"`}, &dev); st != 200 || dev.Status != "disabled" {
		t.Errorf("disable: %d %+v", st, dev)
	}
	if st, _ := rc.do("DELETE", "/devices/dev%3A1", "", map[string]string{"If-Match": `"*"`}, nil); st != 204 {
		t.Errorf("delete: %d", st)
	}
	if _, err := h.Device("dev:1", ""); err == nil {
		t.Error("device still there")
	}
	// Modules.
	mustDevice(t, h, "gw")
	if st, _ := rc.do("PUT", "/devices/gw/modules/m1", `{"deviceId":"gw","moduleId":"m1"}`, nil, &dev); st != 200 || dev.ModuleID != "m1" {
		t.Errorf("module: %d %+v", st, dev)
	}
	// Wrong key and wrong rights are 401.
	bad := newRest(t, h, "iothubowner")
	bad.token, _ = NewSAS(h.HostName, "iothubowner", NewKey(), time.Now().Add(time.Hour))
	if st, _ := bad.do("GET", "/devices/", "", nil, nil); st != 401 {
		t.Errorf("bad key: %d", st)
	}
	if st, _ := newRest(t, h, "device").do("GET", "/devices/", "", nil, nil); st != 401 {
		t.Errorf("device policy: %d", st)
	}
	if st, _ := newRest(t, h, "registryRead").do("GET", "/devices/", "", nil, nil); st != 200 {
		t.Errorf("registryRead: %d", st)
	}
	if st, _ := newRest(t, h, "registryRead").do("DELETE", "/devices/gw", "", nil, nil); st != 401 {
		t.Errorf("registryRead delete: %d", st)
	}
}

func TestRESTTwinMethodsC2D(t *testing.T) {
	h := startHub(t)
	d := mustDevice(t, h, "dev1")
	rc := newRest(t, h, "iothubowner")
	c := mustDial(t, h, "dev1", dialOpts{key: d.PrimaryKey})
	c.sub(t, filterTwinDesired, 0)
	c.sub(t, "devices/dev1/messages/devicebound/#", 1)

	var tw Twin
	st, hdr := rc.do("GET", "/twins/dev1?api-version=2021-04-12", "", nil, &tw)
	if st != 200 || tw.DeviceID != "dev1" || hdr.Get("ETag") != `"`+tw.ETag+`"` || tw.ConnectionState != "Connected" {
		t.Fatalf("get twin: %d %+v", st, tw)
	}
	if st, _ := rc.do("PATCH", "/twins/dev1", `{"properties":{"desired":{"sp":1}}}`, map[string]string{"If-Match": `"AAAAAAAAAAA="`}, nil); st != 412 {
		t.Errorf("patch stale etag: %d", st)
	}
	st, _ = rc.do("PATCH", "/twins/dev1?api-version=2021-04-12", `{"properties":{"desired":{"sp":21.5}},"tags":{"site":"a"}}`,
		map[string]string{"If-Match": `"` + tw.ETag + `"`}, &tw)
	if st != 200 || tw.Properties.Desired["sp"] != 21.5 || tw.Tags["site"] != "a" {
		t.Fatalf("patch: %d %+v", st, tw)
	}
	push := c.waitMsg(t, "desired push", topicPrefix("$iothub/twin/PATCH/properties/desired/?$version=2"))
	if string(push.Payload()) != `{"$version":2,"sp":21.5}` {
		t.Errorf("push = %s", push.Payload())
	}

	var e map[string]any
	if st, _ := rc.do("POST", "/twins/dev1/methods?api-version=2021-04-12", `{"methodName":"m","payload":null,"responseTimeoutInSeconds":1,"connectTimeoutInSeconds":0}`, nil, &e); st != 404 || e["errorCode"] != 404103.0 {
		t.Errorf("not subscribed: %d %v", st, e)
	}
	c.Subscribe(filterMethods, 0, func(cl paho.Client, m paho.Message) {
		if strings.Contains(m.Topic(), "/silent/") {
			return
		}
		rid := m.Topic()[strings.Index(m.Topic(), "$rid=")+5:]
		cl.Publish("$iothub/methods/res/200/?$rid="+rid, 0, false, m.Payload())
	}).WaitTimeout(5 * time.Second)
	var res MethodResult
	if st, _ := rc.do("POST", "/twins/dev1/methods", `{"methodName":"echo","payload":{"a":[1,2]},"responseTimeoutInSeconds":5}`, nil, &res); st != 200 || res.Status != 200 || string(res.Payload) != `{"a":[1,2]}` {
		t.Errorf("invoke: %d %+v", st, res)
	}
	if st, _ := rc.do("POST", "/twins/dev1/methods", `{"methodName":"silent","responseTimeoutInSeconds":0.2}`, nil, &e); st != 504 || e["errorCode"] != 504101.0 {
		t.Errorf("timeout: %d %v", st, e)
	}

	var sent map[string]string
	st, _ = rc.do("POST", "/edgegw/devices/dev1/messages", "hello", map[string]string{"iothub-messageid": "m-1", "iothub-app-color": "blue", "Content-Type": "text/plain",
		"iothub-app-properties-json": `{"Alert Level":"High","Unit":"\u00b0C"}`}, &sent)
	if st != 202 || sent["messageId"] != "m-1" {
		t.Fatalf("send c2d: %d %v", st, sent)
	}
	m := c.waitMsg(t, "c2d", func(m paho.Message) bool { return string(m.Payload()) == "hello" })
	if !strings.Contains(m.Topic(), "color=blue") || !strings.Contains(m.Topic(), "%24.mid=m-1") || !strings.Contains(m.Topic(), "%24.ct=text%2Fplain") ||
		!strings.HasSuffix(m.Topic(), "&color=blue&Alert%20Level=High&Unit=%C2%B0C") {
		t.Errorf("c2d topic = %s", m.Topic())
	}
	if st, _ := rc.do("POST", "/edgegw/devices/dev1/messages", "x", map[string]string{"iothub-app-properties-json": `{"a":1}`}, nil); st != 400 {
		t.Errorf("bad properties header: %d", st)
	}
}

func TestTelemetryStream(t *testing.T) {
	h := startHub(t)
	d := mustDevice(t, h, "dev1")
	c := mustDial(t, h, "dev1", dialOpts{key: d.PrimaryKey})
	c.pub(t, "devices/dev1/messages/events/a=1", 1, `{"n":1}`)
	rc := newRest(t, h, "service")

	var first map[string]any
	if st, _ := rc.do("GET", "/edgegw/telemetry?device=dev1", "", nil, &first); st != 200 || first["body"] != `{"n":1}` ||
		first["seq"] != float64(1) || first["bodyEncoding"] != nil || fmt.Sprint(first["properties"]) != "map[a:1]" {
		t.Fatalf("read: %d %+v", st, first)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	u, err := h.TelemetryStreamURL("dev1", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequestWithContext(ctx, "GET", u+"&after=1", nil)
	resp, err := rc.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	c.pub(t, "devices/dev1/messages/events/", 1, "two")
	sc := bufio.NewScanner(resp.Body)
	if !sc.Scan() {
		t.Fatal(sc.Err())
	}
	var l Telemetry
	if err := json.Unmarshal(sc.Bytes(), &l); err != nil || string(l.Body) != "two" || l.Seq != 2 {
		t.Errorf("followed line %s (%v)", sc.Bytes(), err)
	}
	cancel()
}

func TestWebsocketMQTT(t *testing.T) {
	h := startHub(t)
	d := mustDevice(t, h, "dev1")
	tok, _ := NewSAS("localhost/devices/dev1", "", d.PrimaryKey, time.Now().Add(time.Hour))
	opts := paho.NewClientOptions().AddBroker("wss://" + h.HTTPAddress() + "/$iothub/websocket").
		SetClientID("dev1").SetUsername("localhost/dev1/?api-version=2021-04-12").SetPassword(tok).
		SetProtocolVersion(4).SetAutoReconnect(false).SetTLSConfig(&tls.Config{RootCAs: h.CACertPool(), ServerName: "localhost"})
	cl := paho.NewClient(opts)
	if ct := cl.Connect(); !ct.WaitTimeout(10*time.Second) || ct.Error() != nil {
		t.Fatalf("connect: %v", ct.Error())
	}
	defer cl.Disconnect(0)
	if pt := cl.Publish("devices/dev1/messages/events/", 1, false, strings.Repeat("w", 70000)); !pt.WaitTimeout(5*time.Second) || pt.Error() != nil {
		t.Fatal(pt.Error())
	}
	got, err := h.WaitTelemetry(ctxT(t), "dev1", 1)
	if err != nil || len(got[0].Body) != 70000 {
		t.Fatalf("websocket telemetry: %v", err)
	}
}
