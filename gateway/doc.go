// Package gateway assembles the rooms into a running gateway and owns the
// order in which they start and stop.
//
// Start: the buffer opens (and the embedded hub emulator starts, when
// configured), then the northbound pool, then the southbound adapters, so
// that no reading arrives before there is somewhere durable to put it.
// Stop (the context ends): the adapters stop first, so no new data enters;
// then the northbound connections close; then the buffer closes. Whatever
// the buffer holds is sent after the next start.
//
// Reload (reload.go): a new config is applied to the running gateway as a
// difference. Identities join and leave the pool, adapters start and stop
// by name under Run's ownership, LAN users and mapping rules are replaced
// in place; what did not change is not touched.
//
// The two roads are wired here and nowhere else:
//
//	up:   adapter -> Uplink.Submit -> mapping.Up -> buffer.Append -> northbound drains
//	down: northbound -> Downlink.Handle -> mapping.Down -> adapter.Execute -> mapping.Complete
//
// Config is one YAML file decoded strictly; every error names the file, the
// path in the file, and the reason.
package gateway
