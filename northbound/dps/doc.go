// Package dps registers identities with Azure's Device Provisioning Service
// (DPS) over MQTT, as the Azure device SDKs do, and keeps what DPS assigned
// (hub and device id) in a directory so a restart needs no DPS.
//
// Contract. [Registrar.Register] makes one registration on a connection of
// its own: CONNECT with the registration id and a SAS token signed with the
// identity's key (an individual enrollment's, or derived from a group
// enrollment key) or a client certificate; SUBSCRIBE to the responses;
// PUBLISH the register request; then poll the operation with the
// retry-after DPS gives, also after a 429 or a 5xx, until DPS answers
// assigned or says no, or the Deadline passes. It paces nothing: the
// caller (the northbound pool) takes a token of the gateway's connect rate
// limit before each registration, as before each hub connection, so
// registrations share the pace of connects. [Final] tells DPS's final word
// on an attestation (unauthorized, disabled, failed) from a passing
// failure. [Cache] stores assignments atomically, one file per
// registration id.
package dps
