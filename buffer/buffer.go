// Package buffer is the durable store-and-forward queue: one ordered stream
// per identity, kept on disk in badger so that nothing acknowledged is lost.
//
// Contract: Append returns nil only when every entry is on disk (fsync),
// committed together with whatever else other goroutines appended at the same
// time (group commit by one writer goroutine). Read returns records of one
// stream in order from a cursor; Ack deletes a stream's records up to a
// sequence. After a restart, Read from 0 starts at the oldest unacked record.
// Retention by age and by total bytes drops the oldest records, counts every
// drop and logs them at a bounded rate. A nearly full disk makes Append fail
// (ErrDiskFull) without writing; the queue recovers by itself when space
// returns.
//
// The package imports no other room: it stores bytes. The design record
// (key layout, group commit, reclamation, disk-full handling, measured
// figures) follows in doc.go.
package buffer

import "time"

// Entry is one record to append to a stream.
type Entry struct {
	Stream string // the identity's stream name (the DeviceID); any bytes, 1 to MaxStreamName long
	Data   []byte // opaque bytes (an edgegw.Message in binary form); copied by Append
	Alarm  bool   // kept longer than telemetry when retention must drop
}

// Record is one stored entry as Read returns it.
type Record struct {
	Seq  uint64    // position in its stream, increasing from 1, never reused
	Data []byte    // owned by the caller
	Time time.Time // when it was appended
}
