// Package hubsim is a local hub that speaks Azure IoT Hub's MQTT device
// protocol and a subset of its service REST API, for development, demos,
// tests and benchmarks. The official Azure IoT SDKs connect to it unchanged.
//
// A Hub is configured through its fields and started with Start, which
// returns once the listeners accept connections (by default on 127.0.0.1
// with ephemeral ports). The zero value is usable: it generates a CA and a
// server certificate for "localhost" in memory, keeps the registry in
// memory, and listens on 127.0.0.1:0 for MQTT over TLS and for HTTPS.
//
// Device side: MQTT 3.1.1 over TLS (and over WebSocket at
// /$iothub/websocket on the HTTPS port), authenticated as IoT Hub does: the
// ClientId is the device id (or device/module), the username is
// "{hub}/{device}/?api-version=...", the password a SAS token (device keys or
// a policy with DeviceConnect); without a password, a client certificate
// registered by thumbprint or signed by a trusted CA. Anything wrong gets
// CONNACK 5. Telemetry, twin, direct methods and cloud-to-device messages
// follow IoT Hub's topics; downlink packets are written to the owning
// connection only, never routed by topic.
//
// Service side (HTTPS, api-version 2021-04-12, service SAS): registry,
// twins, direct methods, plus hubsim's own endpoints under /edgegw/ to send
// C2D messages and read or stream telemetry as JSON lines:
//
//	GET /edgegw/telemetry?device=ID&after=SEQ&follow=1
//
// Every blocking call takes a context or a timeout; Close waits for every
// goroutine the hub started.
package hubsim
