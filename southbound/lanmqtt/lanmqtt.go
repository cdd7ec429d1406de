// Package lanmqtt is the southbound adapter that serves LAN devices speaking
// MQTT: an embedded broker (mochi-mqtt) with our own authentication, topic
// ACLs and durable intake.
//
// Devices reach the gateway on two surfaces:
//
//   - the IoT Hub surface: a device publishes on
//     devices/{id}/messages/events/{property-bag} (or
//     devices/{id}/modules/{module}/messages/events/...), exactly as it would
//     to IoT Hub or to an IoT Edge gateway; the property bag is decoded into
//     a Message for identity {id} (or {id}/{module}). A user may speak only
//     for the identity configured as its device;
//   - the topic surface: a publish matching a configured topic rule becomes
//     a Message without identity for a named local device, so mapping routes
//     it by (adapter, device).
//
// Intake is durable: the broker acknowledges a QoS 1 publish (PUBACK) only
// after Uplink.Submit returned nil, that is after the message is on disk.
// Other publishes are ordinary LAN traffic between devices. Execute publishes
// to LAN subscribers (cloud-to-device messages for LAN devices).
package lanmqtt

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"

	"github.com/edgegw/edgegw"
	"github.com/edgegw/edgegw/southbound"
)

// Adapter is one embedded LAN broker.
type Adapter struct {
	name     string
	cfg      Config
	log      *slog.Logger
	accounts atomic.Pointer[accounts] // replaced whole by ApplyUsers
	rules    []topicRule

	started atomic.Bool
	ready   chan struct{}
	mu      sync.Mutex
	srv     *mqtt.Server // set while serving
	addr    net.Addr
	wsAddr  net.Addr
	x509    atomic.Pointer[certAuth] // set by Run before serving; nil when no user may use a certificate

	relay *relay
	twins southbound.Twins // the uplink's, when it keeps twins

	stats                                        counters
	authLog, aclLog, rejectLog, failLog, dropLog rateLog
}

var (
	_ southbound.Adapter  = (*Adapter)(nil)
	_ southbound.Executor = (*Adapter)(nil)
)

// New returns an adapter for cfg (after SetDefaults and Validate, which New
// runs again). It does no I/O. A nil log discards.
func New(name string, cfg Config, log *slog.Logger) (*Adapter, error) {
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("lanmqtt %s: %w", name, err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	a := &Adapter{
		name:  name,
		cfg:   cfg,
		log:   log.With("adapter", name),
		rules: compileRules(cfg.Topics),
		ready: make(chan struct{}),
		relay: newRelay(),
	}
	a.accounts.Store(newAccounts(&cfg))
	return a, nil
}

// Ready is closed once Run listens; Addr is valid from then on.
func (a *Adapter) Ready() <-chan struct{} { return a.ready }

// Addr returns the bound MQTT address, or nil before Run listens.
func (a *Adapter) Addr() net.Addr {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.addr
}

// WebsocketAddr returns the bound websocket address, or nil.
func (a *Adapter) WebsocketAddr() net.Addr {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.wsAddr
}

// Run listens, serves clients and hands intake to up until ctx ends, then
// disconnects every client and returns after all goroutines it started have
// exited. It fails only when it cannot listen or set up TLS.
func (a *Adapter) Run(ctx context.Context, up southbound.Uplink) error {
	if !a.started.CompareAndSwap(false, true) {
		return fmt.Errorf("lanmqtt %s: Run called twice", a.name)
	}
	if ctx.Err() != nil {
		return nil
	}
	var tlsCfg *tls.Config
	if a.cfg.TLS != nil {
		var err error
		if tlsCfg, err = a.serverTLS(); err != nil {
			return fmt.Errorf("lanmqtt %s: tls: %w", a.name, err)
		}
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", a.cfg.Listen)
	if err != nil {
		return fmt.Errorf("lanmqtt %s: %w", a.name, err)
	}
	var wsln net.Listener
	if a.cfg.Websocket != "" {
		if wsln, err = lc.Listen(ctx, "tcp", a.cfg.Websocket); err != nil {
			_ = ln.Close()
			return fmt.Errorf("lanmqtt %s: websocket: %w", a.name, err)
		}
	}
	addr := ln.Addr()
	if tlsCfg != nil {
		ln = tls.NewListener(ln, tlsCfg)
	}

	a.twins, _ = up.(southbound.Twins)
	srv := mqtt.New(a.options())
	h := newHook(a, srv, ctx, up)
	onErr := func(err error) { a.stats.connErrors.Add(1) }
	err = errors.Join(
		srv.AddHook(h, nil),
		srv.AddHook(newPacketIDs(), nil),
		srv.AddListener(newTrackedListener("tcp", ln, a.cfg.ConnectTimeout, srv, onErr)),
	)
	var ws *wsListener
	if wsln != nil && err == nil {
		ws = newWSListener(wsln, tlsCfg, a.cfg.ConnectTimeout)
		err = srv.AddListener(newTrackedListener("ws", ws, a.cfg.ConnectTimeout, srv, onErr))
	}
	if err == nil {
		err = srv.Serve()
	}
	if err != nil {
		_ = ln.Close()
		if wsln != nil {
			_ = wsln.Close()
		}
		_ = srv.Close()
		return fmt.Errorf("lanmqtt %s: start broker: %w", a.name, err)
	}
	a.mu.Lock()
	a.srv, a.addr = srv, addr
	if wsln != nil {
		a.wsAddr = wsln.Addr()
	}
	a.mu.Unlock()
	close(a.ready)
	a.log.Info("lanmqtt: listening", "addr", addr.String(), "tls", tlsCfg != nil)

	<-ctx.Done()
	a.mu.Lock()
	a.srv = nil
	a.mu.Unlock()
	_ = srv.Close() // closes listeners, disconnects clients, waits for their goroutines
	h.pipes.wg.Wait()
	if ws != nil {
		ws.wait()
	}
	return nil
}

func (a *Adapter) options() *mqtt.Options {
	caps := mqtt.NewDefaultServerCapabilities()
	caps.MaximumClients = int64(a.cfg.MaxClients)
	caps.MaximumClientWritesPending = int32(a.cfg.MaxPending)
	caps.MaximumInflight = uint16(a.cfg.MaxInflight)
	caps.ReceiveMaximum = 256
	// The ACL check (OnACLCheck) sees the topic before mochi resolves an
	// inbound alias, so an aliased publish would be refused; advertise no
	// aliases and v5 clients must send the topic every time.
	caps.TopicAliasMaximum = 0
	caps.MaximumSessionExpiryInterval = uint32(a.cfg.SessionExpiry / time.Second)
	// Room for the topic and properties beside the largest payload; larger
	// packets are refused before mochi allocates them.
	caps.MaximumPacketSize = uint32(a.cfg.MaxMessageBytes + 128<<10)
	return &mqtt.Options{
		Capabilities:           caps,
		InlineClient:           true,
		SysTopicResendInterval: 60,
		Logger: slog.New(quietHandler{a.log.Handler(), func(client string) {
			a.dropLog.log(a.log, "lanmqtt: subscriber too slow (max_inflight messages unacknowledged), message dropped", "client", client)
		}}),
	}
}

// Execute publishes a PublishLAN action's payload on its topic, QoS 1 to
// each subscriber. It returns ErrUnavailable when the broker is not running
// or nobody subscribes to the topic (the LAN device is not there), and
// ErrUnknownTarget for another action kind or a topic that is not a valid
// topic name.
func (a *Adapter) Execute(ctx context.Context, act edgegw.Action) error {
	if act.Kind != edgegw.PublishLAN {
		return fmt.Errorf("lanmqtt %s: %s: %w", a.name, act.Kind, southbound.ErrUnknownTarget)
	}
	if act.Topic == "" || checkFilter(act.Topic) != nil || containsWildcard(act.Topic) {
		return fmt.Errorf("lanmqtt %s: publish %q: not a topic name: %w", a.name, act.Topic, southbound.ErrUnknownTarget)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	a.mu.Lock()
	srv := a.srv
	a.mu.Unlock()
	if srv == nil {
		return fmt.Errorf("lanmqtt %s: broker not running: %w", a.name, southbound.ErrUnavailable)
	}
	subs := srv.Topics.Subscribers(act.Topic)
	if len(subs.Subscriptions) == 0 && len(subs.Shared) == 0 {
		return fmt.Errorf("lanmqtt %s: publish %s: no subscriber: %w", a.name, act.Topic, southbound.ErrUnavailable)
	}
	if err := srv.Publish(act.Topic, act.Payload, false, 1); err != nil {
		return fmt.Errorf("lanmqtt %s: publish %s: %w", a.name, act.Topic, err)
	}
	a.stats.published.Add(1)
	return nil
}

func containsWildcard(t string) bool {
	for i := 0; i < len(t); i++ {
		if t[i] == '+' || t[i] == '#' {
			return true
		}
	}
	return false
}
