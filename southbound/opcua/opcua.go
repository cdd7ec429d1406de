// Package opcua is the southbound adapter for OPC UA servers (PLCs, SCADA
// and MES servers), a client built on github.com/gopcua/opcua.
//
// One Adapter owns one server: one endpoint, one secure channel and one
// session, opened and reopened by a single goroutine (Run). Security is
// None, or Basic256Sha256 / Aes128Sha256RsaOaep in Sign or SignAndEncrypt
// mode, with the gateway's application certificate created in the PKI
// directory on first start. A server certificate is used only when it is
// trusted (its file in <pki>/trusted, or its SHA-1 thumbprint in the
// config); an unknown one is refused, kept in <pki>/rejected and named by
// its thumbprint in the log. The session's user is anonymous, a user name
// and password, or an X.509 user certificate.
//
// Each device is a group of points read by a subscription (one per
// device, monitored items with their sampling interval, queue size and
// absolute or percent deadband) or, per device, by polling reads. A value
// with a Bad status is left out of the reading and counted by status code;
// Uncertain values are passed up and counted. A reading carries the
// values' source timestamp: values whose source timestamps fall in one
// window as long as the device's interval make one reading, stamped with
// the newest of them. A lost session is reopened with jittered back-off and its
// subscriptions created anew; a value the server sends again with the
// source timestamp already passed up is not sent twice.
//
// Down road: Execute writes a point (typed, scaled back, range-checked for
// its type before anything is sent); Call invokes a configured OPC UA
// method with typed input arguments and returns its output arguments as a
// JSON object.
//
// Browse lists a server's address space for commissioning (edgegw opcua
// browse).
package opcua
