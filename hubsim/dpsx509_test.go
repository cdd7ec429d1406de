package hubsim

import (
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// TestDPSX509 registers with client certificates: an individual
// enrollment holding the device's certificate, and a group holding the CA
// that signed the devices' certificates. The device then connects to its
// hub with the same certificate.
func TestDPSX509(t *testing.T) {
	d, _ := startFleet(t, 2)
	devCA, err := NewCA("plant devices CA")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.PutEnrollment(Enrollment{GroupID: "x509-group", Attestation: Attestation{Type: AttestationX509,
		X509: &X509Attestation{SigningCertificates: &X509Certificates{Primary: &X509Certificate{Certificate: string(devCA.CertPEM())}}}}}, ""); err != nil {
		t.Fatal(err)
	}
	selfPEM, selfKey, _, err := NewSelfSignedCert("cam-1")
	if err != nil {
		t.Fatal(err)
	}
	e, err := d.PutEnrollment(Enrollment{RegistrationID: "cam-1", Attestation: Attestation{Type: AttestationX509,
		X509: &X509Attestation{ClientCertificates: &X509Certificates{Primary: &X509Certificate{Certificate: string(selfPEM)}}}}}, "")
	if err != nil {
		t.Fatal(err)
	}
	if e.Attestation.X509.ClientCertificates.Primary.Info == nil || e.Attestation.X509.ClientCertificates.Primary.Info.SubjectName != "CN=cam-1" {
		t.Errorf("certificate info = %+v", e.Attestation.X509.ClientCertificates.Primary.Info)
	}
	issued := func(cn string) *tls.Certificate {
		c, k, err := devCA.IssueClientCert(cn)
		if err != nil {
			t.Fatal(err)
		}
		return keyPair(t, c, k)
	}
	for _, tc := range []struct {
		reg  string
		cert *tls.Certificate
	}{{"cam-1", keyPair(t, selfPEM, selfKey)}, {"sensor-7", issued("sensor-7")}} {
		r := dialDPS(t, d, tc.reg, "", tc.cert).register(t)
		st := r.state(t)
		if r.status != 200 || st.Status != "assigned" {
			t.Fatalf("%s: %d %s", tc.reg, r.status, r.raw)
		}
		dc, err := dialAssigned(t, d, st, "", tc.cert)
		if err != nil {
			t.Fatalf("%s: connect to %s: %v", tc.reg, st.AssignedHub, err)
		}
		if err := dc.pub(t, "devices/"+tc.reg+"/messages/events/", 1, "x509"); err != nil {
			t.Fatal(err)
		}
	}
	other, _ := NewCA("someone else")
	oc, ok, _ := other.IssueClientCert("sensor-8")
	for _, tc := range []struct {
		name, reg string
		cert      *tls.Certificate
	}{
		{"CN is not the registration id", "sensor-9", issued("sensor-8")},
		{"signed by an unknown CA", "sensor-8", keyPair(t, oc, ok)},
		{"individual enrollment with another certificate", "cam-1", issued("cam-1")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if r := dialDPS(t, d, tc.reg, "", tc.cert).register(t); r.status != 401 {
				t.Errorf("got %d %s, want 401", r.status, r.raw)
			}
		})
	}
	// No password and no certificate.
	if r := dialDPS(t, d, "sensor-7", "", nil).register(t); r.status != 401 {
		t.Errorf("no credentials: %d", r.status)
	}
}

// TestDPSREST drives enrollments through the provisioning service REST
// subset, as azure-iot-provisioning-service does.
func TestDPSREST(t *testing.T) {
	d, hubs := startFleet(t, 2)
	p := d.Policy()
	tok, err := NewSAS(d.HostName, p.Name, p.PrimaryKey, time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: d.certs.Pool(), ServerName: "localhost"}}
	defer tr.CloseIdleConnections()
	cl := &http.Client{Transport: tr, Timeout: 20 * time.Second}
	do := func(method, path, body, auth string, hdr map[string]string, out any) int {
		t.Helper()
		req, _ := http.NewRequest(method, "https://"+d.HTTPAddress()+path, strings.NewReader(body))
		req.Header.Set("Authorization", auth)
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := cl.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if out != nil && len(b) > 0 {
			if err := json.Unmarshal(b, out); err != nil {
				t.Fatalf("%s %s: %v: %s", method, path, err, b)
			}
		}
		return resp.StatusCode
	}
	var g Enrollment
	body := `{"enrollmentGroupId":"plant-a","attestation":{"type":"symmetricKey","symmetricKey":{"primaryKey":"` + groupKey + `"}},` +
		`"allocationPolicy":"static","iotHubs":["` + d.HubNames()[1] + `"],"initialTwin":{"tags":{"line":"3"},"properties":{"desired":{"rate":2}}}}`
	if st := do("PUT", "/enrollmentGroups/plant-a?api-version=2021-10-01", body, tok, nil, &g); st != 200 || g.ETag == "" ||
		g.Attestation.SymmetricKey.SecondaryKey == "" || g.ProvisioningStatus != "enabled" {
		t.Fatalf("PUT group: %d %+v", st, g)
	}
	var errBody map[string]any
	if st := do("PUT", "/enrollmentGroups/plant-a", body, tok, map[string]string{"If-Match": `"stale"`}, &errBody); st != 412 || errBody["errorCode"] != float64(412002) {
		t.Errorf("stale If-Match: %d %v", st, errBody)
	}
	if st := do("PUT", "/enrollmentGroups/plant-b", `{"attestation":{"type":"tpm"}}`, tok, nil, nil); st != 400 {
		t.Errorf("tpm: %d", st)
	}
	if st := do("GET", "/enrollmentGroups/plant-a", "", "SharedAccessSignature sr=localhost&sig=AAAA&se=9999999999&skn=provisioningserviceowner", nil, nil); st != 401 {
		t.Errorf("bad token: %d", st)
	}
	var ind Enrollment
	if st := do("PUT", "/enrollments/dev-9", `{"attestation":{"type":"symmetricKey"},"deviceId":"device-nine"}`, tok, nil, &ind); st != 200 || ind.RegistrationID != "dev-9" {
		t.Fatalf("PUT enrollment: %d %+v", st, ind)
	}
	var list []Enrollment
	if st := do("POST", "/enrollments/query", `{"query":"*"}`, tok, nil, &list); st != 200 || len(list) != 1 {
		t.Errorf("query: %d %v", st, list)
	}
	// A group device registers, lands on the static hub with the initial twin.
	st := dialDPS(t, d, "line3-a", mustDerive(t, groupKey, "line3-a"), nil).register(t).state(t)
	if st.AssignedHub != d.HubNames()[1] {
		t.Errorf("static allocation gave %s", st.AssignedHub)
	}
	if tw, err := hubs[1].Twin("line3-a", ""); err != nil || tw.Tags["line"] != "3" || tw.Properties.Desired["rate"] == nil {
		t.Errorf("initial twin: %+v, %v", tw, err)
	}
	var rs RegistrationState
	if code := do("GET", "/registrations/line3-a", "", tok, nil, &rs); code != 200 || rs.AssignedHub != st.AssignedHub || rs.DeviceID != "line3-a" {
		t.Errorf("GET registration: %d %+v", code, rs)
	}
	var regs []RegistrationState
	if code := do("POST", "/registrations/plant-a/query", "", tok, nil, &regs); code != 200 || len(regs) != 1 {
		t.Errorf("group registrations: %d %v", code, regs)
	}
	if code := do("POST", "/edgegw/registrations/line3-a/move", `{"hub":"`+d.HubNames()[0]+`"}`, tok, nil, &rs); code != 200 || rs.AssignedHub != d.HubNames()[0] {
		t.Errorf("move: %d %+v", code, rs)
	}
	if !hubs[0].HasDevice("line3-a") || hubs[1].HasDevice("line3-a") {
		t.Error("move did not move the device")
	}
	var infos []HubInfo
	if code := do("GET", "/edgegw/hubs", "", tok, nil, &infos); code != 200 || len(infos) != 2 || infos[0].Devices != 1 {
		t.Errorf("hubs: %d %+v", code, infos)
	}
	if code := do("DELETE", "/registrations/line3-a", "", tok, nil, nil); code != 204 {
		t.Errorf("DELETE registration: %d", code)
	}
	if code := do("DELETE", "/enrollmentGroups/plant-a", "", tok, map[string]string{"If-Match": g.ETag}, nil); code != 204 {
		t.Errorf("DELETE group: %d", code)
	}
	if code := do("GET", "/enrollmentGroups/plant-a", "", tok, nil, nil); code != 404 {
		t.Errorf("GET deleted group: %d", code)
	}
	// Deleted group: its devices can no longer register.
	if r := dialDPS(t, d, "line3-b", mustDerive(t, groupKey, "line3-b"), nil).register(t); r.status != 401 {
		t.Errorf("register after delete: %d", r.status)
	}
}

// TestDPSWebsocket registers over MQTT over WebSocket on the DPS's HTTPS
// port, as the SDKs' MqttWs transports do.
func TestDPSWebsocket(t *testing.T) {
	d, _ := startFleet(t, 1)
	e, err := d.PutEnrollment(Enrollment{RegistrationID: "ws-1", Attestation: Attestation{Type: AttestationSymmetricKey}}, "")
	if err != nil {
		t.Fatal(err)
	}
	tok, _ := NewSAS(d.IDScope+"/registrations/ws-1", "registration", e.Attestation.SymmetricKey.PrimaryKey, time.Now().Add(time.Hour))
	c := &dpsClient{regID: "ws-1", resp: map[string]chan dpsResponse{}}
	opts := paho.NewClientOptions().AddBroker("wss://" + d.HTTPAddress() + "/$iothub/websocket").
		SetClientID("ws-1").SetUsername(d.IDScope + "/registrations/ws-1/api-version=2019-03-31").SetPassword(tok).
		SetProtocolVersion(4).SetAutoReconnect(false).SetDefaultPublishHandler(c.onMessage).
		SetTLSConfig(&tls.Config{RootCAs: d.certs.Pool(), ServerName: "localhost"})
	c.Client = paho.NewClient(opts)
	if ct := c.Connect(); !ct.WaitTimeout(10*time.Second) || ct.Error() != nil {
		t.Fatalf("connect: %v", ct.Error())
	}
	defer c.Disconnect(0)
	if st := c.Subscribe(dpsResFilter, 1, nil); !st.WaitTimeout(10*time.Second) || st.Error() != nil {
		t.Fatal(st.Error())
	}
	if r := c.register(t); r.status != 200 || r.state(t).Status != "assigned" {
		t.Errorf("%d %s", r.status, r.raw)
	}
}
