package hubsim

import (
	"bytes"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// dpsConn is one device connection to the DPS.
type dpsConn struct {
	cl       *mqtt.Client
	user     dpsUsername
	password string // SAS token; "" with a client certificate
	hasPass  bool
	chain    []*x509.Certificate // TLS client chain, leaf first

	mu      sync.Mutex
	nextPID uint16
}

// newBroker configures mochi for the DPS device API; dpsHook is its only
// auth/ACL hook.
func (d *DPS) newBroker() *mqtt.Server {
	caps := mqtt.NewDefaultServerCapabilities()
	caps.MaximumClientWritesPending = 64
	caps.MaximumSessionExpiryInterval = 0
	caps.RetainAvailable = 0
	caps.MaximumPacketSize = 64 << 10
	caps.MaximumClients = 1 << 20
	srv := mqtt.New(&mqtt.Options{
		Capabilities: caps,
		Logger:       slog.New(minLevel{d.log.Handler(), slog.LevelWarn}),
	})
	_ = srv.AddHook(&dpsHook{d: d}, nil)
	return srv
}

type dpsHook struct {
	mqtt.HookBase
	d *DPS
}

func (k *dpsHook) ID() string { return "hubsim-dps" }

func (k *dpsHook) Provides(b byte) bool {
	return bytes.Contains([]byte{
		mqtt.OnConnect, mqtt.OnConnectAuthenticate, mqtt.OnACLCheck, mqtt.OnDisconnect,
		mqtt.OnPacketRead, mqtt.OnPublish, mqtt.OnSubscribe,
	}, []byte{b})
}

// OnConnect checks the username; the credentials are checked with each
// request and refused with 401 on the response topic, as DPS does.
func (k *dpsHook) OnConnect(cl *mqtt.Client, pk packets.Packet) error {
	d := k.d
	refuse := func(rc byte, why string) error {
		d.log.Debug("dps connect refused", "registration", pk.Connect.ClientIdentifier, "remote", cl.Net.Remote, "reason", why)
		_ = cl.WritePacket(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connack}, ReasonCode: rc})
		return fmt.Errorf("%w (code %d): %s", errRefused, rc, why)
	}
	if pk.ProtocolVersion != 4 {
		return refuse(1, fmt.Sprintf("protocol version %d, want 4 (MQTT 3.1.1)", pk.ProtocolVersion))
	}
	u, err := parseDPSUsername(string(pk.Connect.Username))
	if err != nil {
		return refuse(5, err.Error())
	}
	if pk.Connect.ClientIdentifier != u.RegistrationID {
		return refuse(5, fmt.Sprintf("client id %q is not the registration id %q", pk.Connect.ClientIdentifier, u.RegistrationID))
	}
	if !strings.EqualFold(u.IDScope, d.IDScope) {
		return refuse(5, fmt.Sprintf("id scope %q is not %q", u.IDScope, d.IDScope))
	}
	c := &dpsConn{cl: cl, user: u, password: string(pk.Connect.Password), hasPass: pk.Connect.PasswordFlag}
	if st, ok := cl.Net.Conn.(interface{ ConnectionState() tls.ConnectionState }); ok {
		c.chain = st.ConnectionState().PeerCertificates
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return errHubClosed
	}
	d.conns[cl] = c
	return nil
}

func (k *dpsHook) OnConnectAuthenticate(cl *mqtt.Client, _ packets.Packet) bool {
	return k.d.connOf(cl) != nil
}

// OnACLCheck: publishes are checked in OnPacketRead; the only filter a
// device may subscribe to is $dps/registrations/res/#.
func (k *dpsHook) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	return k.d.connOf(cl) != nil && (write || topic == dpsResFilter)
}

// OnSubscribe grants at most QoS 1, as DPS does.
func (k *dpsHook) OnSubscribe(_ *mqtt.Client, pk packets.Packet) packets.Packet {
	for i := range pk.Filters {
		pk.Filters[i].Qos = min(pk.Filters[i].Qos, 1)
	}
	return pk
}

func (k *dpsHook) OnDisconnect(cl *mqtt.Client, _ error, _ bool) {
	k.d.mu.Lock()
	delete(k.d.conns, cl)
	k.d.mu.Unlock()
}

// OnPacketRead closes the connection on a publish to anything but the two
// request topics, or at QoS 2.
func (k *dpsHook) OnPacketRead(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if pk.FixedHeader.Type != packets.Publish {
		return pk, nil
	}
	if k.d.connOf(cl) == nil || pk.FixedHeader.Qos > 1 {
		return pk, packets.ErrRejectPacket
	}
	if _, err := parseDPSTopic(pk.TopicName); err != nil {
		k.d.log.Debug("dps: bad publish, closing connection", "registration", cl.ID, "err", err)
		return pk, packets.ErrRejectPacket
	}
	return pk, nil
}

// OnPublish answers a register or poll request on the response topic.
func (k *dpsHook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	d := k.d
	c := d.connOf(cl)
	t, err := parseDPSTopic(pk.TopicName)
	if c == nil || err != nil {
		return pk, packets.ErrRejectPacket
	}
	status, body, retry := d.handle(c, t, pk.Payload)
	if err := c.respond(status, t.rid, retry, body); err != nil {
		d.log.Debug("dps: response not written", "registration", cl.ID, "err", err)
	}
	return pk, packets.CodeSuccessIgnore
}

func (d *DPS) connOf(cl *mqtt.Client) *dpsConn {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.conns[cl]
}

// respond writes a QoS 1 response to this connection only, if it holds
// the response subscription.
func (c *dpsConn) respond(status int, rid string, retryAfter int, body []byte) error {
	if _, ok := c.cl.State.Subscriptions.Get(dpsResFilter); !ok {
		return fmt.Errorf("not subscribed to %s", dpsResFilter)
	}
	c.mu.Lock()
	c.nextPID++
	if c.nextPID == 0 {
		c.nextPID = 1
	}
	pid := c.nextPID
	c.mu.Unlock()
	return c.cl.WritePacket(packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1},
		TopicName:   dpsResponseTopic(status, rid, retryAfter),
		Payload:     body,
		PacketID:    pid,
	})
}

// operation is a registration in progress or done, polled by its id.
type operation struct {
	id      string
	regKey  string
	readyAt time.Time
	expires time.Time
	result  RegistrationState
}

// operationTTL is how long an operation can be polled.
const operationTTL = 10 * time.Minute

// operationStatus is the RegistrationOperationStatus body.
type operationStatus struct {
	OperationID       string             `json:"operationId"`
	Status            string             `json:"status"`
	RegistrationState *RegistrationState `json:"registrationState,omitempty"`
}

// handle answers one request: the topic status, the JSON body and the
// retry-after seconds (0 = none).
func (d *DPS) handle(c *dpsConn, t dpsTopic, payload []byte) (int, []byte, int) {
	retry := int(math.Ceil(d.RetryAfter.Seconds()))
	d.mu.Lock()
	if t.op == dpsRegister {
		d.stats.registers++
	} else {
		d.stats.polls++
	}
	throttled := d.throttle > 0 || d.limiter != nil && !d.limiter.Allow()
	if d.throttle > 0 {
		d.throttle--
	}
	if throttled {
		d.stats.throttled++
	}
	d.mu.Unlock()
	if throttled {
		return 429, dpsError(429001, "Operations are being throttled for this tenant."), retry
	}
	regID := c.user.RegistrationID
	if t.op == dpsRegister {
		body, err := parseRegisterBody(payload)
		if err != nil {
			return 400, dpsError(400004, err.Error()), 0
		}
		if body.RegistrationID != "" && body.RegistrationID != regID {
			return 400, dpsError(400004, "registrationId in the body is not the connection's"), 0
		}
		op, status, msg := d.register(c, regID)
		if op == nil {
			d.countRefused()
			return status, dpsError(status*1000+2, msg), 0
		}
		b, _ := json.Marshal(operationStatus{OperationID: op.id, Status: "assigning"})
		return 202, b, retry
	}
	if _, status, msg := d.attest(c, regID); status != 0 {
		d.countRefused()
		return status, dpsError(status*1000+2, msg), 0
	}
	now := time.Now()
	d.mu.Lock()
	op, ok := d.ops[t.operationID]
	if ok && (op.regKey != strings.ToLower(regID) || now.After(op.expires)) {
		ok = false
	}
	var res RegistrationState
	if ok {
		res = op.result
	}
	d.mu.Unlock()
	if !ok {
		return 404, dpsError(404201, "Operation "+t.operationID+" not found for "+regID), 0
	}
	if now.Before(op.readyAt) {
		b, _ := json.Marshal(operationStatus{OperationID: op.id, Status: "assigning",
			RegistrationState: &RegistrationState{RegistrationID: regID, Status: "assigning"}})
		return 202, b, retry
	}
	b, _ := json.Marshal(operationStatus{OperationID: op.id, Status: res.Status, RegistrationState: &res})
	return 200, b, 0
}

func (d *DPS) countRefused() {
	d.mu.Lock()
	d.stats.refused++
	d.mu.Unlock()
}

// dpsError is DPS's flat error body.
func dpsError(code int, msg string) []byte {
	b, _ := json.Marshal(map[string]any{
		"errorCode": code, "trackingId": newTrackingID(), "message": msg,
		"timestampUtc": time.Now().UTC().Format("2006-01-02T15:04:05.0000000Z"),
	})
	return b
}

func newTrackingID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// newOperationID returns an id in DPS's shape: "5.{16 hex}.{guid}".
func newOperationID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return "5." + hex.EncodeToString(b[:]) + "." + newTrackingID()
}
