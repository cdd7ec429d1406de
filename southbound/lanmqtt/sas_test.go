package lanmqtt

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/edgegw/edgegw"
	"github.com/edgegw/edgegw/internal/testpeer"
	"github.com/edgegw/edgegw/iothub"
)

// makeSAS signs a device token as the Node SDK does.
func makeSAS(host, identity, key string, expiry time.Time) string {
	res := host + "/devices/" + identity
	if dev, mod, ok := cutModule(identity); ok {
		res = host + "/devices/" + dev + "/modules/" + mod
	}
	sr := url.QueryEscape(res)
	se := strconv.FormatInt(expiry.Unix(), 10)
	k, _ := base64.StdEncoding.DecodeString(key)
	mac := hmac.New(sha256.New, k)
	mac.Write([]byte(sr + "\n" + se))
	sig := url.QueryEscape(base64.StdEncoding.EncodeToString(mac.Sum(nil)))
	return "SharedAccessSignature sr=" + sr + "&sig=" + sig + "&se=" + se
}

func cutModule(id string) (string, string, bool) {
	for i := range id {
		if id[i] == '/' {
			return id[:i], id[i+1:], true
		}
	}
	return "", "", false
}

var (
	key3     = base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))
	otherKey = base64.StdEncoding.EncodeToString([]byte("another key, another device....."))
)

func sasConfig() Config {
	cfg := baseConfig()
	cfg.Users = append(cfg.Users,
		User{Username: "dev3", SASKey: edgegw.Secret(key3), Device: "dev3"},
		User{Username: "mod3", SASKey: edgegw.Secret(key3), Device: "dev3/m"},
	)
	return cfg
}

func TestVerifySAS(t *testing.T) {
	k, _ := base64.StdEncoding.DecodeString(key3)
	now := time.Now()
	good := makeSAS("myhub.azure-devices.net", "dev3", key3, now.Add(time.Hour))
	se := strconv.FormatInt(now.Add(time.Hour).Unix(), 10)
	tampered := strings.Replace(good, "&se="+se, "&se="+strconv.FormatInt(now.Add(time.Hour).Unix()+1, 10), 1)
	if err := verifySAS(good, k, "dev3", now); err != nil {
		t.Fatal(err)
	}
	if err := verifySAS(makeSAS("gw", "dev3/m", key3, now.Add(time.Hour)), k, "dev3/m", now); err != nil {
		t.Errorf("module: %v", err)
	}
	if err := verifySAS(makeSAS("h", "dev3", key3, now.Add(-time.Minute)), k, "dev3", now); err != nil {
		t.Errorf("within clock skew: %v", err)
	}
	// Unlike IoT Hub, a token names exactly one identity: LAN users may
	// share a key, so a device's token does not cover its modules.
	if err := verifySAS(makeSAS("h", "dev3", key3, now.Add(time.Hour)), k, "dev3/m", now); !errors.Is(err, iothub.ErrBadAudience) {
		t.Errorf("device token for its module: %v", err)
	}
	for name, tok := range map[string]string{
		"expired":           makeSAS("h", "dev3", key3, now.Add(-time.Hour)),
		"other key":         makeSAS("h", "dev3", otherKey, now.Add(time.Hour)),
		"other device":      makeSAS("h", "dev1", key3, now.Add(time.Hour)),
		"not a segment":     makeSAS("h", "dev", key3, now.Add(time.Hour)),
		"hub scope":         strings.Replace(makeSAS("h", "dev3", key3, now.Add(time.Hour)), "sr=h%2Fdevices%2Fdev3&", "sr=h%2Fdevices&", 1),
		"module for device": makeSAS("h", "dev3/m", key3, now.Add(time.Hour)),
		"policy":            good + "&skn=device",
		"not a token":       "hunter2",
		"no sig":            "SharedAccessSignature sr=h%2Fdevices%2Fdev3&se=99999999999",
		"tampered se":       tampered,
	} {
		if err := verifySAS(tok, k, "dev3", now); !errors.Is(err, errBadToken) {
			t.Errorf("%s: err %v, want errBadToken", name, err)
		}
	}
}

// A device connecting as to IoT Hub (username with api-version, SAS token
// password) is accepted and may speak for its identity only.
func TestSASConnect(t *testing.T) {
	up := new(testpeer.Uplink)
	a := start(t, sasConfig(), up)
	user := "myhub.azure-devices.net/dev3/?api-version=2021-04-12&DeviceClientType=test"
	tok := makeSAS("myhub.azure-devices.net", "dev3", key3, time.Now().Add(time.Hour))
	c := connect(t, pahoOpts(brokerURL(a), "dev3", user, tok))
	publish(t, c, "devices/dev3/messages/events/k=v", 1, "sas")
	if rs := up.Wait(t, 1); rs[0].Message.Identity != "dev3" {
		t.Errorf("got %s", fmtReading(rs[0]))
	}
	if err := connectErr(t, pahoOpts(brokerURL(a), "dev3", user, makeSAS("h", "dev3", otherKey, time.Now().Add(time.Hour)))); err == nil {
		t.Error("token with the wrong key accepted")
	}
	if err := connectErr(t, pahoOpts(brokerURL(a), "dev1", "h/dev1/?api-version=1", makeSAS("h", "dev1", key3, time.Now().Add(time.Hour)))); err == nil {
		t.Error("SAS accepted for a user without sas_key")
	}
	// The configured username works too.
	if err := connectErr(t, pahoOpts(brokerURL(a), "dev3/m", "mod3", makeSAS("h", "dev3/m", key3, time.Now().Add(time.Hour)))); err != nil {
		t.Errorf("module with configured username: %v", err)
	}
}

// The official Azure IoT device SDK for Node.js sends telemetry through the
// LAN broker over TLS, exactly as it would to IoT Hub. It uses the SDK
// installed for hubsim's tests (npm ci --prefix hubsim/sdktest).
func TestAzureDeviceSDK(t *testing.T) {
	modules, err := filepath.Abs(filepath.Join("..", "..", "hubsim", "sdktest", "node_modules"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(modules, "azure-iot-device-mqtt")); err != nil {
		testpeer.Missing(t, "Azure IoT SDK missing (run npm ci --prefix hubsim/sdktest): %v", err)
	}
	node := testpeer.RequireTool(t, "node")
	certFile, keyFile, _ := writeCert(t)
	cfg := sasConfig()
	cfg.TLS = &TLSConfig{CertFile: certFile, KeyFile: keyFile}
	up := new(testpeer.Uplink)
	a := start(t, cfg, up)

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, filepath.Join("testdata", "sdk", "telemetry.js"))
	cmd.Env = append(os.Environ(),
		"SDK_MODULES="+modules,
		"NODE_EXTRA_CA_CERTS="+certFile,
		"DEVICE_CS=HostName=127.0.0.1:"+port(a)+";DeviceId=dev3;SharedAccessKey="+key3,
	)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("node: %v\n%s", err, out.String())
	}
	rs := up.Wait(t, 2)
	m := rs[0].Message
	if m.Identity != "dev3" || string(m.Body) != `{"temperature":21.5}` || m.MessageID != "mid-1" || m.CorrelationID != "cid 1" ||
		m.ContentType != "application/json" || m.ContentEncoding != "utf-8" ||
		!slices.Equal(m.Properties, []edgegw.Property{{Key: "alert", Value: "yes&no=maybe/so"}}) {
		t.Errorf("first message: %s", fmtReading(rs[0]))
	}
	if string(rs[1].Message.Body) != "second" {
		t.Errorf("second message: %s", fmtReading(rs[1]))
	}
}
