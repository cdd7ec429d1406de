package lanmqtt

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/edgegw/edgegw"
	"github.com/edgegw/edgegw/iothub"
	"github.com/edgegw/edgegw/southbound"
)

// A relayed device speaks the IoT Hub device protocol to the gateway as it
// would to IoT Hub (a leaf device of a transparent gateway). Its telemetry
// takes the intake like any device's. Its requests on $iothub/ topics
// travel through its connection's pipe, so they keep their order with its
// telemetry, and are answered by the gateway to that device alone:
//
//   - twin GET: from the identity's last known twin (southbound.Twins),
//     which the gateway keeps on disk, so it is answered while the hub is
//     away;
//   - reported PATCH: made durable for the hub like telemetry, then
//     answered 204 with the reported $version it makes;
//   - method responses: handed to the Relay call waiting for them.
//
// The hub's commands for the identity come down through Relay.

// Topics a relayed device may use besides its telemetry and C2D topics.
var (
	relayPublish = []string{
		"$iothub/twin/GET/#",
		"$iothub/twin/PATCH/properties/reported/#",
		"$iothub/methods/res/#",
	}
	relaySubscribe = []string{
		"$iothub/twin/res/#",
		"$iothub/twin/PATCH/properties/desired/#",
		"$iothub/methods/POST/#",
	}
)

// Limits of the relay.
const (
	// maxReportedBytes is IoT Hub's limit of a twin's reported section.
	maxReportedBytes = 32 << 10
	// DefaultMethodTimeout is how long a relayed method waits for the
	// device: IoT Hub's longest response timeout, so that the hub, which
	// knows the caller's timeout, answers 504 first.
	DefaultMethodTimeout = 300 * time.Second
	// DefaultC2DTimeout is how long a relayed C2D message waits for the
	// device's PUBACK; then it is left for the hub to redeliver.
	DefaultC2DTimeout = 60 * time.Second
)

// relay holds the commands waiting for a device's answer.
type relay struct {
	// watch is told when a relayed device starts or stops listening for
	// methods or C2D (WatchListening); listening has what it was told.
	watchMu   sync.Mutex
	watch     func(identity edgegw.DeviceID, kind edgegw.CommandKind, listening bool)
	listening map[listenKey]bool

	mu      sync.Mutex
	rid     atomic.Uint64
	methods map[waitKey]chan edgegw.Result // by client id and $rid
	acks    map[ackKey]chan struct{}       // C2D: by client id and packet id
	desired map[string]int64               // desired $version each device has seen
}

type waitKey struct{ client, rid string }

type ackKey struct {
	client string
	id     uint16
}

func newRelay() *relay {
	return &relay{methods: map[waitKey]chan edgegw.Result{}, acks: map[ackKey]chan struct{}{}, desired: map[string]int64{},
		listening: map[listenKey]bool{}}
}

var _ southbound.Relayer = (*Adapter)(nil)

// Relays reports whether identity is a relayed device of this adapter.
func (a *Adapter) Relays(identity edgegw.DeviceID) bool {
	acc := a.accounts.Load().byDevice[string(identity)]
	return acc != nil && acc.relay
}

type listenKey struct {
	client string
	kind   edgegw.CommandKind
}

// WatchListening registers fn, called whenever a relayed device starts or
// stops listening for direct methods ($iothub/methods/POST/) or C2D
// messages (devices/{id}/messages/devicebound/), so that the identity's
// connection to the hub can mirror it: IoT Hub answers 404103 for a device
// that does not listen for methods, and keeps C2D messages until the
// device subscribes. fn must not block. Call it before Run.
func (a *Adapter) WatchListening(fn func(identity edgegw.DeviceID, kind edgegw.CommandKind, listening bool)) {
	a.relay.watchMu.Lock()
	a.relay.watch = fn
	a.relay.watchMu.Unlock()
}

// methodsChanged looks again at whether cl's device listens for methods
// and C2D, after its subscriptions changed or it connected or left
// (leaving: cl is on its way out; another connection may have taken over
// its id).
func (h *hook) methodsChanged(cl *mqtt.Client, leaving bool) {
	acc := h.a.accounts.Load().byDevice[cl.ID]
	if acc == nil || !acc.relay {
		return
	}
	r := h.a.relay
	r.watchMu.Lock()
	defer r.watchMu.Unlock()
	cur := cl
	if leaving {
		cur = nil
		if c, ok := h.srv.Clients.Get(cl.ID); ok && c != cl && !c.Closed() {
			cur = c // taken over
		}
	}
	dev, mod, _ := strings.Cut(cl.ID, "/")
	topics := map[edgegw.CommandKind]string{edgegw.Method: "$iothub/methods/POST/m/"}
	if mod == "" {
		topics[edgegw.C2D] = "devices/" + dev + "/messages/devicebound/"
	}
	for kind, topic := range topics {
		on := cur != nil && subscribedQoS(cur, topic) >= 0
		k := listenKey{cl.ID, kind}
		if was, ok := r.listening[k]; ok && was == on || !ok && !on {
			continue
		}
		r.listening[k] = on
		if r.watch != nil {
			r.watch(edgegw.DeviceID(cl.ID), kind, on)
		}
	}
}

// OnSubscribed, OnUnsubscribed and OnSessionEstablished (a persistent
// session brings its subscriptions back) feed methodsChanged.
func (h *hook) OnSubscribed(cl *mqtt.Client, _ packets.Packet, _ []byte) { h.methodsChanged(cl, false) }

func (h *hook) OnUnsubscribed(cl *mqtt.Client, _ packets.Packet) { h.methodsChanged(cl, cl.Closed()) }

func (h *hook) OnSessionEstablished(cl *mqtt.Client, _ packets.Packet) { h.methodsChanged(cl, false) }

// IoT Hub's answers for a method that reaches no device.
var (
	resultNotOnline = edgegw.Result{Status: 404, Payload: []byte(`{"errorCode":404103,"message":"Timed out waiting for device to connect."}`)}
	resultTimeout   = edgegw.Result{Status: 504, Payload: []byte(`{"errorCode":504101,"message":"Timed out waiting for the response from device."}`)}
)

// Relay passes a hub command on to a relayed device.
func (a *Adapter) Relay(ctx context.Context, cmd edgegw.Command) edgegw.Result {
	if !a.Relays(cmd.Identity) {
		return edgegw.Result{Status: 404, Payload: errJSON(fmt.Errorf("%s is not a relayed device of adapter %s", cmd.Identity, a.name))}
	}
	a.mu.Lock()
	srv := a.srv
	a.mu.Unlock()
	var cl *mqtt.Client
	if srv != nil {
		if c, ok := srv.Clients.Get(string(cmd.Identity)); ok && !c.Closed() && c.Net.Conn != nil {
			cl = c
		}
	}
	switch cmd.Kind {
	case edgegw.Method:
		return a.relayMethod(ctx, cl, cmd)
	case edgegw.Desired:
		return a.relayDesired(cl, cmd)
	case edgegw.C2D:
		return a.relayC2D(ctx, srv, cl, cmd)
	}
	return edgegw.Result{Status: 501, Payload: errJSON(fmt.Errorf("command %s cannot be relayed", cmd.Kind))}
}

func (a *Adapter) relayMethod(ctx context.Context, cl *mqtt.Client, cmd edgegw.Command) edgegw.Result {
	topic := "$iothub/methods/POST/" + cmd.Name + "/"
	if cl == nil || subscribedQoS(cl, topic) < 0 {
		return resultNotOnline
	}
	rid := strconv.FormatUint(a.relay.rid.Add(1), 16) // as IoT Hub: a hexadecimal counter
	key := waitKey{cl.ID, rid}
	ch := make(chan edgegw.Result, 1)
	a.relay.mu.Lock()
	a.relay.methods[key] = ch
	a.relay.mu.Unlock()
	defer func() {
		a.relay.mu.Lock()
		delete(a.relay.methods, key)
		a.relay.mu.Unlock()
	}()
	payload := cmd.Payload
	if len(bytes.TrimSpace(payload)) == 0 {
		payload = []byte("null") // the SDKs parse the body as JSON
	}
	if err := send(cl, topic+"?$rid="+rid, payload); err != nil {
		return resultNotOnline
	}
	a.stats.relayed.Add(1)
	t := time.NewTimer(a.cfg.MethodTimeout)
	defer t.Stop()
	select {
	case res := <-ch:
		return res
	case <-t.C:
	case <-ctx.Done():
	}
	return resultTimeout
}

// relayDesired pushes a desired patch to the device when it listens for
// them and has not seen that version yet (after a reconnect the gateway
// passes on the whole desired section; the device may have read it).
// The device that does not listen reads its twin when it comes back.
func (a *Adapter) relayDesired(cl *mqtt.Client, cmd edgegw.Command) edgegw.Result {
	const topic = "$iothub/twin/PATCH/properties/desired/"
	if cl == nil || subscribedQoS(cl, topic) < 0 {
		return edgegw.Result{Status: 200}
	}
	if !a.relay.advance(cl.ID, cmd.Version) {
		return edgegw.Result{Status: 200}
	}
	body, err := withVersion(cmd.Payload, cmd.Version)
	if err != nil {
		return edgegw.Result{Status: 400, Payload: errJSON(err)}
	}
	q := ""
	if cmd.Version > 0 {
		q = "?$version=" + strconv.FormatInt(cmd.Version, 10)
	}
	_ = send(cl, topic+q, body) // a device gone meanwhile reads its twin on return
	a.stats.relayed.Add(1)
	return edgegw.Result{Status: 200}
}

// advance records that client has seen desired version v and reports
// whether v is newer than what it had (versions 0 are always new).
func (r *relay) advance(client string, v int64) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if v > 0 && v <= r.desired[client] {
		return false
	}
	if v > 0 {
		r.desired[client] = v
	}
	return true
}

func (a *Adapter) relayC2D(ctx context.Context, srv *mqtt.Server, cl *mqtt.Client, cmd edgegw.Command) edgegw.Result {
	dev, mod, _ := strings.Cut(string(cmd.Identity), "/")
	if mod != "" {
		return edgegw.Result{Status: 404, Payload: errJSON(fmt.Errorf("modules have no cloud-to-device messages"))}
	}
	topic := "devices/" + dev + "/messages/devicebound/" + iothub.EncodeBag(cmd.Props)
	qos := -1
	if cl != nil {
		qos = subscribedQoS(cl, topic)
	}
	if qos < 0 {
		return edgegw.Result{Status: 503, Payload: errJSON(fmt.Errorf("device %s is not connected or not subscribed to its messages", cmd.Identity))}
	}
	pk := packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: byte(min(qos, 1))},
		TopicName:   topic, Payload: cmd.Payload, Created: time.Now().Unix(),
	}
	if pk.FixedHeader.Qos == 0 {
		if err := cl.WritePacket(pk); err != nil {
			return edgegw.Result{Status: 503, Payload: errJSON(err)}
		}
		a.stats.relayed.Add(1)
		return edgegw.Result{Status: 200}
	}
	id, err := cl.NextPacketID()
	if err != nil {
		return edgegw.Result{Status: 503, Payload: errJSON(err)}
	}
	pk.PacketID = uint16(id)
	key := ackKey{cl.ID, pk.PacketID}
	ch := make(chan struct{}, 1)
	a.relay.mu.Lock()
	a.relay.acks[key] = ch
	a.relay.mu.Unlock()
	defer func() {
		a.relay.mu.Lock()
		delete(a.relay.acks, key)
		a.relay.mu.Unlock()
	}()
	// In the session's in-flight set, mochi takes the device's PUBACK
	// (OnQosComplete) and resends the message when a persistent session
	// reconnects.
	if cl.State.Inflight.Set(pk) {
		atomic.AddInt64(&srv.Info.Inflight, 1)
	}
	if err := cl.WritePacket(pk); err != nil {
		return edgegw.Result{Status: 503, Payload: errJSON(err)}
	}
	a.stats.relayed.Add(1)
	t := time.NewTimer(a.cfg.C2DTimeout)
	defer t.Stop()
	select {
	case <-ch:
		return edgegw.Result{Status: 200}
	case <-t.C:
	case <-ctx.Done():
	}
	return edgegw.Result{Status: 504, Payload: errJSON(fmt.Errorf("device %s did not acknowledge the message in time", cmd.Identity))}
}

// OnQosComplete completes a relayed C2D message on the device's PUBACK.
func (h *hook) OnQosComplete(cl *mqtt.Client, pk packets.Packet) {
	r := h.a.relay
	r.mu.Lock()
	ch := r.acks[ackKey{cl.ID, pk.PacketID}]
	r.mu.Unlock()
	if ch != nil {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// subscribedQoS returns the highest QoS of cl's subscriptions that match
// topic, or -1 when none does.
func subscribedQoS(cl *mqtt.Client, topic string) int {
	q := -1
	for filter, sub := range cl.State.Subscriptions.GetAll() {
		if covers(filter, topic) && int(sub.Qos) > q {
			q = int(sub.Qos)
		}
	}
	return q
}

// send writes a QoS 0 publish to cl alone.
func send(cl *mqtt.Client, topic string, payload []byte) error {
	return cl.WritePacket(packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish},
		TopicName:   topic, Payload: payload, Created: time.Now().Unix(),
	})
}

// withVersion returns the JSON object doc with "$version": v set (when v
// is known).
func withVersion(doc []byte, v int64) ([]byte, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(doc, &m); err != nil || m == nil {
		return nil, fmt.Errorf("desired patch is not a JSON object")
	}
	if v > 0 {
		m["$version"] = json.RawMessage(strconv.FormatInt(v, 10))
	}
	return json.Marshal(m)
}

func errJSON(err error) []byte {
	b, _ := json.Marshal(map[string]string{"error": err.Error()})
	return b
}

// relayRequest is a relayed device's publish on an $iothub/ topic, parsed.
type relayRequest struct {
	kind   int // reqGet, reqReported, reqMethodResponse
	rid    string
	status int // method response
}

const (
	reqGet = iota + 1
	reqReported
	reqMethodResponse
)

// parseRelayTopic parses the $iothub/ topics a device publishes on.
func parseRelayTopic(topic string) (relayRequest, error) {
	var r relayRequest
	var rest string
	switch {
	case strings.HasPrefix(topic, "$iothub/twin/GET/"):
		r.kind, rest = reqGet, strings.TrimPrefix(topic, "$iothub/twin/GET/")
	case strings.HasPrefix(topic, "$iothub/twin/PATCH/properties/reported/"):
		r.kind, rest = reqReported, strings.TrimPrefix(topic, "$iothub/twin/PATCH/properties/reported/")
	case strings.HasPrefix(topic, "$iothub/methods/res/"):
		status, q, ok := strings.Cut(strings.TrimPrefix(topic, "$iothub/methods/res/"), "/")
		n, err := strconv.Atoi(status)
		if !ok || err != nil || n < 100 || n > 999 {
			return r, fmt.Errorf("%w: method response status %q is not a status code", errBadBag, status)
		}
		r.kind, r.status, rest = reqMethodResponse, n, q
	default:
		return r, fmt.Errorf("%w: %q is not an IoT Hub device request topic", errBadBag, topic)
	}
	props, err := iothub.ParseBag(strings.TrimPrefix(rest, "?"))
	if err != nil {
		return r, err
	}
	for _, p := range props {
		if p.Key == "$rid" {
			r.rid = p.Value
		}
	}
	if r.rid == "" {
		return r, fmt.Errorf("%w: %q has no $rid", errBadBag, topic)
	}
	return r, nil
}

// relayUp turns a relayed device's $iothub/ publish into a pending item of
// its pipe: the answer is sent by the acker, in order with the device's
// other publishes. Nothing on these topics is forwarded to other clients.
func (h *hook) relayUp(cl *mqtt.Client, acc *account, pk packets.Packet, it *pending) {
	a := h.a
	req, err := parseRelayTopic(pk.TopicName)
	if err == nil && pk.FixedHeader.Qos == 2 {
		err = fmt.Errorf("%w: IoT Hub requests are QoS 0 or 1", southbound.ErrRejected)
	}
	if err != nil {
		it.intake, it.err = true, err // refused: reason code or a closed connection
		return
	}
	identity := edgegw.DeviceID(acc.identity)
	switch req.kind {
	case reqGet:
		it.after = func(error) {
			doc := []byte(`{"desired":{"$version":1},"reported":{"$version":1}}`)
			if a.twins != nil {
				doc = a.twins.Twin(identity)
			}
			a.relay.seen(cl.ID, doc)
			a.answerTwin(cl, 200, req.rid, "", doc)
		}
	case reqReported:
		if e := checkPatch(pk.Payload); e != nil {
			it.after = func(error) {
				a.answerTwin(cl, 400, req.rid, "", []byte(`{"errorCode":400004,"message":"`+e.Error()+`"}`))
			}
			return
		}
		now := time.Now().UTC()
		r := edgegw.Reading{Adapter: a.name, Device: acc.identity, Time: now,
			Message: &edgegw.Message{Kind: edgegw.Reported, Identity: identity, Body: pk.Payload, Created: now, ContentType: "application/json"}}
		a.stats.received.Add(1)
		it.intake, it.device = true, acc.identity
		it.done = it.doneCh
		h.start(h.ctx, r, it.done)
		it.after = func(err error) {
			switch {
			case err == nil:
				var v int64
				if a.twins != nil {
					v = a.twins.Reported(identity, pk.Payload)
				}
				a.answerTwin(cl, 204, req.rid, "&$version="+strconv.FormatInt(v, 10), nil)
			case refused(err):
				a.answerTwin(cl, 400, req.rid, "", []byte(`{"errorCode":400004,"message":"reported properties refused by the gateway"}`))
			default:
				a.answerTwin(cl, 503, req.rid, "", []byte(`{"errorCode":503000,"message":"the gateway could not store the reported properties; try again"}`))
			}
		}
	case reqMethodResponse:
		res := edgegw.Result{Status: req.status, Payload: pk.Payload}
		it.after = func(error) {
			a.relay.mu.Lock()
			ch := a.relay.methods[waitKey{cl.ID, req.rid}]
			a.relay.mu.Unlock()
			if ch != nil {
				select {
				case ch <- res:
				default:
				}
			}
		}
	}
}

// seen records the desired version of a twin document a device was given.
func (r *relay) seen(client string, doc []byte) {
	var tw struct {
		Desired struct {
			Version int64 `json:"$version"`
		} `json:"desired"`
	}
	if json.Unmarshal(doc, &tw) == nil && tw.Desired.Version > 0 {
		r.advance(client, tw.Desired.Version)
	}
}

// answerTwin sends a twin response to the device, when it listens.
func (a *Adapter) answerTwin(cl *mqtt.Client, status int, rid, extra string, body []byte) {
	topic := "$iothub/twin/res/" + strconv.Itoa(status) + "/?$rid=" + iothub.EscapeComponent(rid) + extra
	if subscribedQoS(cl, topic) < 0 {
		return // IoT Hub, too, answers only a device that subscribed
	}
	_ = send(cl, topic, body)
}

// checkPatch checks a reported patch: a JSON object within IoT Hub's size.
func checkPatch(b []byte) error {
	if len(b) > maxReportedBytes {
		return fmt.Errorf("reported patch of %d bytes, limit %d", len(b), maxReportedBytes)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil || m == nil {
		return fmt.Errorf("reported patch is not a JSON object")
	}
	return nil
}
