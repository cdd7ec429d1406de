// Package northbound keeps one authenticated MQTT connection per identity to
// the hub, drains each identity's buffer stream over it in order, and hands
// commands from the hub to the downlink road.
//
// Contract. [New] loads identities (keys, certificates) and does no network
// I/O. [Pool.Run] supervises one MQTT connection per identity (package
// mqtt3) until its context
// ends: it connects through a gateway-wide rate limit, reconnects with
// jittered exponential back-off, renews SAS tokens by a planned reconnect
// that loses nothing, and returns after every connection is closed and
// every goroutine it started has exited.
// [Pool.Add] and [Pool.Remove] change the identities while it runs (a
// reloaded configuration); a removed identity lets what is in flight land
// and leaves the rest of its stream in the queue.
//
// Up: each identity's stream (named by its DeviceID) is read in order from
// the [Queue] and published with QoS 1 and a bounded in-flight window;
// whatever part of the window is free goes out at once, encoded into one
// buffer and written in one TLS write (mqtt3.Conn.PublishBatch), so a
// backlog drains in writes of many messages, not one each. The
// queue is acked up to a sequence only when the hub's PUBACK (for
// reported properties on IoT Hub: the 2xx twin response) arrived on the same
// connection; whatever was in flight when a connection broke is read again
// and re-sent on the next one. So delivery is at-least-once, in order per
// identity, with duplicates only inside the in-flight window.
//
// Down: C2D messages, desired-property patches (and the full desired
// section after every connect) and direct methods become [edgegw.Command]s
// for the [Downlink]. A method's Result goes back as the method response; a
// C2D message is acknowledged (PUBACK, which completes it at the hub) after
// Handle returns a final status, and left for the hub to redeliver when the
// status is 503 or 504 or the pool is stopping; since the hub redelivers
// only after a reconnect, the identity then reconnects on purpose after a
// back-off (Config.DesiredRetryMin to DesiredRetryMax), letting what is in
// flight land first, as for a token renewal. Desired properties are
// applied one document at a time per identity; a version that failed for a
// passing reason (503, 504) is applied again after a back-off, after the
// next connect, or with a newer patch.
//
// Token renewal. MQTT 3.1.1 cannot re-authenticate a live connection and
// IoT Hub closes it when the SAS token expires, so each identity renews by
// a planned reconnect when 70-80% of Config.TokenTTL has passed (spread per
// identity so thousands do not renew in the same second): it stops
// reading the stream, lets the PUBACKs of what is in flight land, sends
// DISCONNECT, connects with a fresh token (through the connect rate limit,
// without back-off) and resumes from the acked cursor. Tests run this with
// TokenTTL of a few seconds; a production 60 s or 1 h lifetime is the same
// code path with a longer timer.
//
// Profiles: "azure-iothub" speaks IoT Hub's MQTT device protocol (SAS tokens
// from device keys or a DeviceConnect policy, or X.509); "mqtt" speaks to
// any MQTT 3.1.1 broker with per-identity topic templates.
//
// Costs (BenchmarkConnect): an idle connected identity holds one
// goroutine, its connection's reader. Its worker (connect, send,
// reconnect) runs while there is something to do and is woken by the
// queue's Notify, its keep-alive and renewal timer, or the connection's
// end; an acker runs while publishes are in flight, a desired-properties
// runner while a document waits, and one goroutine per command being
// carried out.
// Memory per identity with TLS is in the README (Sizing).
package northbound

import (
	"context"

	"github.com/edgegw/edgegw"
	"github.com/edgegw/edgegw/buffer"
)

// Queue is the part of the buffer northbound drains.
//
// Read returns up to max records of stream with Seq > after, in order; it
// blocks until at least one exists or ctx ends (then it returns ctx's
// error). Notify registers fn to be called once, without blocking, when a
// record with Seq > after is appended, and returns true; it returns false
// and registers nothing when such a record exists already. A stream has one
// callback (a later Notify replaces it); closing the queue calls them all.
// With it an idle identity waits without a goroutine. Ack deletes the
// stream's records up to and including upto; it is called with increasing
// values. Read and Notify are called from one goroutine per stream at a
// time, Ack from another, and all of them concurrently for different
// streams. An error from Read is retried after a pause; an error from Ack
// is logged and the next Ack covers the same records. *buffer.Queue
// implements Queue.
type Queue interface {
	Read(ctx context.Context, stream string, after uint64, max int) ([]buffer.Record, error)
	Notify(stream string, after uint64, fn func()) bool
	Ack(stream string, upto uint64) error
}

// Downlink receives the commands the hub sends to an identity.
//
// Handle is called once per command, concurrently for different identities
// and for different commands of one identity (at most Config.MaxCommands at
// a time per identity: a method call beyond that is answered 429 without
// reaching Handle, and desired-property patches that arrive while one is
// being applied collapse into the newest state). It returns when the
// command has been carried out or refused; ctx ends when the pool stops. For a Method the Result is the
// method response (status and JSON payload). For Desired (a patch, or the
// whole desired section after a reconnect when its $version changed) the
// gateway reports back through the buffer itself; the Result is only
// logged, except that a transient status (503: the device is unavailable,
// 504: timed out) leaves that $version unhandled: the document is handed
// down again after a jittered back-off (Config.DesiredRetryMin doubling to
// DesiredRetryMax), after the next connect, or merged with a newer patch
// at once, until another status comes back. Desired documents of one
// identity are handed down one at a time. For C2D the message is
// acknowledged to the hub (completed) after Handle returns, unless the
// status is transient (503, 504): then it is not acknowledged, and the
// hub redelivers it after the reconnect the pool makes for it (so Handle
// may see a message again). Any other non-2xx status is logged; IoT Hub's MQTT surface
// cannot reject a message.
type Downlink interface {
	Handle(ctx context.Context, cmd edgegw.Command) edgegw.Result
}

// TwinObserver is the optional part of a Downlink that is shown each
// identity's whole twin, {"desired":{...},"reported":{...}}, whenever the
// pool reads it from the hub (after every connect, IoT Hub profile). It
// must not block.
type TwinObserver interface {
	ObserveTwin(identity edgegw.DeviceID, twin []byte)
}
