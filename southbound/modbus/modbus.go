// Package modbus is the southbound adapter for Modbus TCP and RTU devices.
//
// One Adapter owns one bus: a TCP connection to a device or gateway
// ("host:port") or an RTU serial line, with any number of devices (unit
// ids) on it. A single goroutine owns the bus and sends one request at a
// time; on RTU the silent frame gap (t3.5) is kept between frames. Each
// device is polled on its own interval; its points are read in the fewest
// requests (contiguous ranges up to 125 registers or 2000 bits, bridging
// holes up to max_gap). Values are decoded per type, byte order, scale and
// offset (decode.go, pure) and handed up as one edgegw.Reading per poll,
// holding only the points that were read: a failed read is never sent as a
// zero.
//
// Writes (Execute, edgegw.WritePoint) are queued to the bus goroutine and
// run between two poll requests, ahead of polls, with the inverse scaling,
// a range check before anything is sent, and an optional read-back.
//
// Faults stay local: a unit that times out is backed off on its own
// (exponential, jittered) and costs its neighbours at most one timeout per
// back-off period; a lost TCP connection or serial port is reopened forever
// with back-off. Timeouts, exceptions (by code), CRC errors, short frames
// and answers from the wrong unit are counted per device (Stats).
//
// The wire framing is github.com/grid-x/modbus (client and packagers) over
// our own transports: TCP with late-answer skipping, and RTU over a
// poller-backed tty (tty.go) that works at any descriptor number.
package modbus
