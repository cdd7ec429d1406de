package buffer

import (
	"fmt"
	"time"

	badger "github.com/dgraph-io/badger/v4"
)

// Every walk over a stream's records starts with Seek at a sequence the
// caller knows to be at or before the first record it wants (a stream's
// head, a reader's cursor), never at the start of the stream: deleted
// records stay as tombstones until compaction, and walking them again on
// every read makes draining quadratic.

// scanChunk bounds the records one walk collects.
const scanChunk = 1024

// recInfo describes one stored record.
type recInfo struct {
	seq    uint64
	cl     class
	stored int64     // what it counts against MaxBytes
	t      time.Time // append time; only where the walk reads values
}

func storedOf(item *badger.Item) int64 {
	return item.ValueSize() - valueHdrLen + RecordOverhead
}

// walk calls fn for each record of stream id from sequence from on, in
// order, skipping those in skip, until fn returns false or an error.
// With values set, r.t is filled in.
func walk(txn *badger.Txn, id uint32, from uint64, skip map[recKey]struct{}, values bool,
	fn func(r recInfo, item *badger.Item) (bool, error)) error {
	it := txn.NewIterator(badger.IteratorOptions{Prefix: dataPrefix(id)})
	defer it.Close()
	for it.Seek(dataKey(id, from)); it.Valid(); it.Next() {
		item := it.Item()
		_, seq, ok := parseDataKey(item.Key())
		if !ok {
			return fmt.Errorf("bad record key %x", item.Key())
		}
		if _, gone := skip[recKey{id, seq}]; gone {
			continue
		}
		r := recInfo{seq: seq, cl: classOf(item.UserMeta()), stored: storedOf(item)}
		if values {
			if err := item.Value(func(v []byte) (err error) { r.t, err = valueTime(v); return err }); err != nil {
				return fmt.Errorf("record %d/%d: %w", id, seq, err)
			}
		}
		more, err := fn(r, item)
		if err != nil || !more {
			return err
		}
	}
	return nil
}

// scanRange returns up to limit records with from <= seq <= upto.
func scanRange(txn *badger.Txn, id uint32, from, upto uint64, limit int, skip map[recKey]struct{}) ([]recInfo, error) {
	var out []recInfo
	err := walk(txn, id, from, skip, false, func(r recInfo, _ *badger.Item) (bool, error) {
		if r.seq > upto {
			return false, nil
		}
		out = append(out, r)
		return len(out) < limit, nil
	})
	return out, err
}

// scanClass returns up to limit records of class cl from sequence from on.
func scanClass(txn *badger.Txn, id uint32, cl class, from uint64, limit int, skip map[recKey]struct{}) ([]recInfo, error) {
	var out []recInfo
	err := walk(txn, id, from, skip, true, func(r recInfo, _ *badger.Item) (bool, error) {
		if r.cl == cl {
			out = append(out, r)
		}
		return len(out) < limit, nil
	})
	return out, err
}

// firstOf returns the first record of class cl (numClasses: any class)
// from sequence from on.
func firstOf(txn *badger.Txn, id uint32, cl class, from uint64, skip map[recKey]struct{}) (recInfo, bool, error) {
	var out recInfo
	var found bool
	err := walk(txn, id, from, skip, true, func(r recInfo, _ *badger.Item) (bool, error) {
		if cl == numClasses || r.cl == cl {
			out, found = r, true
		}
		return !found, nil
	})
	return out, found, err
}

// view runs fn in a read transaction, unless the queue is closed.
func (q *Queue) view(fn func(txn *badger.Txn) error) error {
	q.dbMu.RLock()
	defer q.dbMu.RUnlock()
	if q.dbClosed {
		return ErrClosed
	}
	return q.db.View(fn)
}

// scan reads up to max records of stream id from sequence from on for
// Read, separating the expired ones (at most scanChunk of them).
func (q *Queue) scan(id uint32, from uint64, max int) (recs []Record, expired []uint64, err error) {
	now := time.Now()
	err = q.view(func(txn *badger.Txn) error {
		return walk(txn, id, from, nil, true, func(r recInfo, item *badger.Item) (bool, error) {
			if q.expired(r.t, r.cl, now) {
				expired = append(expired, r.seq)
				return len(expired) < scanChunk, nil
			}
			v, err := item.ValueCopy(nil)
			if err != nil {
				return false, err
			}
			recs = append(recs, Record{Seq: r.seq, Data: v[valueHdrLen:], Time: r.t})
			return len(recs) < max, nil
		})
	})
	if err != nil {
		return nil, nil, fmt.Errorf("buffer: read: %w", err)
	}
	return recs, expired, nil
}

// findExpired returns up to scanChunk expired records of stream id from
// sequence from on. Append times rise with sequence, and alarms live at
// least as long as telemetry, so nothing after a live telemetry record
// can have expired: the walk stops there.
func (q *Queue) findExpired(id uint32, from uint64, now time.Time) ([]uint64, error) {
	var out []uint64
	err := q.view(func(txn *badger.Txn) error {
		return walk(txn, id, from, nil, true, func(r recInfo, _ *badger.Item) (bool, error) {
			if !q.expired(r.t, r.cl, now) {
				return r.cl != telemetry, nil
			}
			out = append(out, r.seq)
			return len(out) < scanChunk, nil
		})
	})
	return out, err
}
