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
//	GET  /edgegw/telemetry?device=ID&after=SEQ&follow=1
//	POST /edgegw/devices/{id}/messages   body = message; headers iothub-messageid,
//	                                     iothub-correlationid, iothub-app-{name}, Content-Type
//
// Both need "Authorization: SharedAccessSignature ..." signed with a policy
// that has ServiceConnect (see ServiceConnectionString and NewSAS). Each
// telemetry line is a Telemetry in JSON (Telemetry.MarshalJSON: a UTF-8
// body as text, a binary one as base64 with "bodyEncoding":"base64",
// properties as an object); "after" resumes from a sequence number. C2D
// properties whose names need case or spaces go in the header
// iothub-app-properties-json as a JSON object.
//
// Device Provisioning Service: a DPS links started Hubs (several per
// process, each with its own ports and registry; NewCA gives them one trust
// anchor) and serves the DPS device API over MQTT/TLS and WebSocket
// (register, operation status polling with retry-after, 429 when throttled,
// 401 on the response topic for bad credentials) and the provisioning
// service REST subset (/enrollments, /enrollmentGroups, /registrations; SAS
// of the provisioningserviceowner policy). Symmetric keys (individual, or
// derived from a group key with DeriveDeviceKey) and X.509 (the device's own
// certificate, or a signing CA for a group) attest; hashed (weighted, stable
// per registration id), geoLatency and static allocation pick the hub; the
// device is created in that hub's registry with the same key, or as
// selfSigned with its certificate's thumbprint. It is told the hub as
// LinkedHub.Name, by default "localhost:{port}", which the hub accepts as
// its host name. DPS.Move moves a device and its twin to another hub for
// re-provisioning tests; DPS.ThrottleNext and RequestsPerSecond inject 429s.
//
// With the official Node.js SDKs (what sdk_test.go does):
//   - trust the CA: NODE_EXTRA_CA_CERTS=<ca.pem> (or the device client's
//     setOptions({ca}));
//   - device, SAS key: HostName={hub};DeviceId=...;SharedAccessKey=...;
//     GatewayHostName=localhost:{mqtt port} (DeviceConnectionString);
//   - device, X.509: the SDK ignores GatewayHostName for x509=true, so use
//     HostName=localhost:{mqtt port} (what DeviceConnectionString gives);
//     hubsim accepts the hub name with a port in usernames and SAS
//     resource URIs;
//   - MQTT over WebSocket (MqttWs) always dials port 443, ignoring any port
//     in the host: listen on 443 to use it;
//   - provisioning: ProvisioningDeviceClient.create(dps.GlobalEndpoint(),
//     dps.IDScope, new Mqtt(), new SymmetricKeySecurityClient(regId, key))
//     (sdktest/provision.js), then HostName={assignedHub} for the device;
//   - service (azure-iothub): its REST client cannot take a port. Preload
//     sdktest/port-shim.js (NODE_OPTIONS=--require .../port-shim.js with
//     HUBSIM_HOST and HUBSIM_HTTP_PORT), or listen on 443. C2D send in
//     azure-iothub is AMQP only, which hubsim does not speak; use SendC2D or
//     POST /edgegw/devices/{id}/messages.
//
// Fault injection for reliability tests: SetFaults (refuse connects,
// throttle connects per second, delay or withhold PUBACKs, stall),
// DropConnections, Disconnect, and the blocking hooks BeforeConnack and
// BeforePuback.
//
// Every blocking call takes a context or a timeout; Close waits for every
// goroutine the hub started.
package hubsim
