// Package iothub is the grammar of Azure IoT Hub's MQTT device protocol,
// shared by the gateway's rooms: property bags, SAS tokens, device
// usernames and topic names. Pure functions, no I/O, no state.
//
// Both sides use it: hubsim and the LAN broker (southbound/lanmqtt) read
// what devices send, the northbound pool and identity write what a device
// sends to the hub. Every rule here follows what IoT Hub and its official
// SDKs do on the wire:
//
//   - Property bags: "k1=v1&k2&k3=", items split on "&", each on its first
//     "=", keys and values percent-encoded like JavaScript's
//     encodeURIComponent (strict: !'()* too) and decoded without turning
//     "+" into a space. System properties have short names starting with
//     "$." ($.mid, $.cid, $.ct, $.ce, ...).
//   - SAS tokens: "SharedAccessSignature sr=...&sig=...[&skn=...]&se=...",
//     signed over the raw sr, a newline and se; verified as Microsoft's own
//     validator does (audience by segment prefix, five minutes of clock
//     skew).
//   - Usernames "{host}/{device}[/{module}]/?api-version=...", parsed as
//     edgeHub does, and telemetry topics
//     "devices/{device}[/modules/{module}]/messages/events/{bag}".
//
// Errors wrap ErrBadBag, ErrBadUsername or one of the SAS errors, so that
// callers can add their own wording and still test with errors.Is.
package iothub

// MaxMessageSize is IoT Hub's device-to-cloud message limit (256 KB): the
// body plus the property names and values.
const MaxMessageSize = 256 << 10
