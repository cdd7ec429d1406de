// Package mapping translates between device values and hub messages, both
// ways, with validation. It is pure: no sockets, no disk, no goroutines.
//
// Up: a Reading becomes telemetry Messages and reported-property patches for
// identities, according to the configured rules.
// Down: a Command becomes the Actions to run on devices, or a rejection with
// a status (400, 404, 501) when any part of it is invalid, in which case no
// action is produced at all.
package mapping
