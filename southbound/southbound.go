// Package southbound holds the contracts between the gateway and the
// adapters that talk to local devices. Each adapter lives in a sub-package
// (lanmqtt, modbus, serial, simulator) and sees only these contracts: it
// never imports the buffer or northbound.
//
// An adapter is built from its typed Config by its constructor, which does no
// I/O. The gateway then calls Run once, in a goroutine it owns, and cancels
// the context to stop it.
package southbound

import (
	"context"
	"errors"

	"github.com/edgegw/edgegw"
)

// Uplink is the road up, implemented by the gateway (mapping then buffer).
//
// Submit is called by adapters, from any number of goroutines at once. It
// returns nil only when every message derived from r is durable on disk: an
// adapter may then acknowledge its device (a LAN PUBACK, for instance).
//
// An error wrapping ErrRejected means the reading itself is unacceptable
// (say a LAN message for an identity this gateway does not own, or larger
// than the hub accepts); retrying cannot help, so the adapter drops it and
// counts it. Any other error means it was not stored (disk full, I/O error,
// gateway stopping): the adapter must not acknowledge it, and a LAN client
// should retry; a poller drops the reading and counts it. Submit blocks at
// most until ctx ends.
type Uplink interface {
	Submit(ctx context.Context, r edgegw.Reading) error
}

// Pipeline is the optional asynchronous form of Uplink, for adapters with
// many readings in flight from one source: a LAN MQTT connection with a
// window of QoS 1 publishes, whose PUBACKs must each wait for the disk but
// need not wait for one another.
//
// Start hands r to the store and returns without waiting for the disk.
// The outcome, with Submit's meaning (nil: durable; ErrRejected: never
// acceptable; anything else: not stored), is sent on done exactly once,
// so done must have room for it. Readings started one after another by
// one goroutine are stored in that order, which lets the adapter answer
// its device in order while several commits are pending. Start blocks
// only while the store's intake is full (back-pressure from the disk) or
// until ctx ends.
type Pipeline interface {
	Uplink
	Start(ctx context.Context, r edgegw.Reading, done chan error)
}

// Twins is the optional part of an Uplink that keeps the last known twin
// of each identity whose device is relayed (speaks the hub's device
// protocol through the gateway). A relaying adapter answers its devices'
// twin requests from it, so they are answered while the hub is away.
type Twins interface {
	// Twin returns the identity's last known twin as the hub's GET
	// answers it: {"desired":{...,"$version":n},"reported":{...,"$version":m}}.
	// It never waits for the hub; an identity never seen has empty
	// sections.
	Twin(identity edgegw.DeviceID) []byte
	// Reported applies a reported-properties patch, which Start or Submit
	// has already made durable for the hub, to the last known twin and
	// returns the reported $version it makes.
	Reported(identity edgegw.DeviceID, patch []byte) int64
}

// Relayer is the optional capability of an adapter whose devices speak the
// hub's device protocol themselves, as leaf devices of a transparent
// gateway: commands for them are passed on whole instead of mapped to
// actions.
type Relayer interface {
	// Relays reports whether this adapter relays identity's device.
	Relays(identity edgegw.DeviceID) bool
	// Relay hands cmd to the identity's device and returns the device's
	// answer: a method's status and payload; 200 once a C2D message is
	// acknowledged by the device or a desired patch is passed on. It
	// returns by the time ctx ends (504 then).
	Relay(ctx context.Context, cmd edgegw.Command) edgegw.Result
	// WatchListening registers fn, called (before Run or while it runs)
	// whenever a relayed device starts or stops listening for commands of
	// kind (edgegw.Method, edgegw.C2D: connected and subscribed), so that
	// its identity's hub connection can look the same. fn must not block.
	WatchListening(fn func(identity edgegw.DeviceID, kind edgegw.CommandKind, listening bool))
}

// Adapter is one southbound adapter instance.
//
// Run connects to the devices, polls or serves them, hands readings to up,
// and keeps doing so through device failures (reconnecting with back-off,
// counting errors) until ctx ends; then it releases every socket, port and
// goroutine it started and returns. It returns a non-nil error only when it
// cannot work at all (a listen address in use, a serial device missing at
// start when so configured); the gateway then stops. Run is called once.
type Adapter interface {
	Run(ctx context.Context, up Uplink) error
}

// Executor is the optional capability of an adapter that can act on devices:
// write a point, send a frame, publish to the LAN.
//
// Execute is called by the gateway's downlink road only with actions that
// mapping has validated, possibly from several goroutines; the adapter
// serialises access to each bus itself. It returns when the action is done
// (and verified, where configured) or has failed: ErrUnknownTarget when the
// device or point does not exist in this adapter, ErrUnavailable when the
// device is not connected, or an error from the device (a Modbus exception,
// a timeout). It blocks at most until ctx ends. Execute may be called before
// Run has connected; it then fails with ErrUnavailable.
type Executor interface {
	Execute(ctx context.Context, a edgegw.Action) error
}

// Errors that adapters and the uplink wrap.
var (
	ErrRejected      = errors.New("rejected")
	ErrUnknownTarget = errors.New("unknown device or point")
	ErrUnavailable   = errors.New("device unavailable")
)

// Caller is the optional capability of an adapter that calls procedures on
// its devices and gets values back (an OPC UA method call): actions of
// kind edgegw.CallMethod. Call has Execute's contract and errors, and
// returns the procedure's output as a JSON object for the method response.
type Caller interface {
	Call(ctx context.Context, a edgegw.Action) ([]byte, error)
}
