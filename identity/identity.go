// Package identity holds the device and module identities the gateway
// speaks for at the hub, and their credentials: SAS tokens (signed and
// renewed on a jittered schedule) and X.509 client certificates. Secrets
// never reach a log.
package identity
