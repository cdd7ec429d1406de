// Package edgegw is the shared vocabulary of the edge gateway: the values that
// travel the two roads between the rooms.
//
// Up: a southbound adapter produces a [Reading]; mapping turns it into one or
// more [Message]s for a [DeviceID]; the buffer keeps them durably; northbound
// sends them to the hub.
//
// Down: northbound receives a [Command] (a direct method, a desired-property
// patch or a cloud-to-device message); mapping validates it and turns it into
// [Action]s; an adapter executes each action; a [Result] goes back to the hub.
//
// This package holds types and pure functions only: no I/O, no goroutines, no
// globals. Every other package may import it; it imports none of them.
package edgegw
