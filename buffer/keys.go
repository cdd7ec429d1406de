package buffer

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	badger "github.com/dgraph-io/badger/v4"
)

// Key layout (see doc.go for why):
//
//	0x00 'v'                  -> formatVersion
//	0x01 id(4, big endian)    -> meta: version(1) last(8) head[2](8 each)
//	                             count[2](8 each) bytes[2](8 each) name
//	0x02 id(4) seq(8)         -> record: unix nanos(8) payload; UserMeta bit 0 = alarm
//
// Fixed-width big-endian ids and sequences make byte order equal numeric
// order, so one stream's records are one contiguous, sorted key range and
// no stream's prefix is a prefix of another's, whatever the names are.
const (
	prefixVersion byte = 0x00
	prefixMeta    byte = 0x01
	prefixData    byte = 0x02

	dataKeyLen   = 1 + 4 + 8
	metaKeyLen   = 1 + 4
	metaFixedLen = 1 + 8*7
	valueHdrLen  = 8

	metaVersion   byte = 1
	formatVersion      = "edgegw-buffer/1"

	userMetaAlarm byte = 1 << 0
)

var versionKey = []byte{prefixVersion, 'v'}

// RecordOverhead is what each record counts against Config.MaxBytes on top
// of its payload: the key, the time header and badger's per-entry cost.
const RecordOverhead = 32

// storedSize is what a record with a payload of n bytes counts against
// Config.MaxBytes.
func storedSize(n int) int64 { return int64(n) + RecordOverhead }

// class separates records that retention treats differently.
type class uint8

const (
	telemetry class = iota
	alarm
	numClasses
)

func classOf(userMeta byte) class {
	if userMeta&userMetaAlarm != 0 {
		return alarm
	}
	return telemetry
}

func (c class) userMeta() byte {
	if c == alarm {
		return userMetaAlarm
	}
	return 0
}

func dataKey(id uint32, seq uint64) []byte {
	k := make([]byte, dataKeyLen)
	k[0] = prefixData
	binary.BigEndian.PutUint32(k[1:], id)
	binary.BigEndian.PutUint64(k[5:], seq)
	return k
}

func dataPrefix(id uint32) []byte {
	k := make([]byte, 5)
	k[0] = prefixData
	binary.BigEndian.PutUint32(k[1:], id)
	return k
}

// parseDataKey returns the stream id and sequence of a record key.
func parseDataKey(k []byte) (id uint32, seq uint64, ok bool) {
	if len(k) != dataKeyLen || k[0] != prefixData {
		return 0, 0, false
	}
	return binary.BigEndian.Uint32(k[1:]), binary.BigEndian.Uint64(k[5:]), true
}

func metaKey(id uint32) []byte {
	k := make([]byte, metaKeyLen)
	k[0] = prefixMeta
	binary.BigEndian.PutUint32(k[1:], id)
	return k
}

func parseMetaKey(k []byte) (id uint32, ok bool) {
	if len(k) != metaKeyLen || k[0] != prefixMeta {
		return 0, false
	}
	return binary.BigEndian.Uint32(k[1:]), true
}

// meta is the persisted state of one stream, written in the same
// transaction as every change to its records, so it is always exact.
type meta struct {
	last  uint64             // highest sequence ever assigned; never goes down
	head  [numClasses]uint64 // first existing record of each class; 0 if none
	count [numClasses]int64  // records of each class
	bytes [numClasses]int64  // their stored size (payload + RecordOverhead)
}

// first returns the sequence of the stream's first record, or last+1 if
// the stream is empty.
func (m *meta) first() uint64 {
	f := m.last + 1
	for _, h := range m.head {
		if h != 0 && h < f {
			f = h
		}
	}
	return f
}

func (m *meta) records() int64 { return m.count[telemetry] + m.count[alarm] }
func (m *meta) size() int64    { return m.bytes[telemetry] + m.bytes[alarm] }

func (m *meta) encode(name string) []byte {
	b := make([]byte, metaFixedLen, metaFixedLen+len(name))
	b[0] = metaVersion
	p := b[1:]
	put := func(v uint64) { binary.BigEndian.PutUint64(p, v); p = p[8:] }
	put(m.last)
	for c := range numClasses {
		put(m.head[c])
	}
	for c := range numClasses {
		put(uint64(m.count[c]))
	}
	for c := range numClasses {
		put(uint64(m.bytes[c]))
	}
	return append(b, name...)
}

var errBadMeta = errors.New("bad stream meta")

// decodeMeta parses a meta value and checks its invariants.
func decodeMeta(v []byte) (meta, string, error) {
	var m meta
	if len(v) < metaFixedLen+1 || v[0] != metaVersion {
		return m, "", fmt.Errorf("%w: %d bytes, version %d", errBadMeta, len(v), firstByte(v))
	}
	p := v[1:]
	get := func() uint64 { x := binary.BigEndian.Uint64(p); p = p[8:]; return x }
	m.last = get()
	for c := range numClasses {
		m.head[c] = get()
	}
	for c := range numClasses {
		m.count[c] = int64(get())
	}
	for c := range numClasses {
		m.bytes[c] = int64(get())
	}
	for c := range numClasses {
		switch {
		case m.count[c] < 0 || m.bytes[c] < 0:
			return m, "", fmt.Errorf("%w: negative count or size", errBadMeta)
		case (m.count[c] == 0) != (m.head[c] == 0):
			return m, "", fmt.Errorf("%w: head %d with %d records", errBadMeta, m.head[c], m.count[c])
		case m.head[c] > m.last:
			return m, "", fmt.Errorf("%w: head %d after last %d", errBadMeta, m.head[c], m.last)
		case uint64(m.count[c]) > m.last:
			return m, "", fmt.Errorf("%w: %d records but last %d", errBadMeta, m.count[c], m.last)
		}
	}
	return m, string(p), nil
}

func firstByte(b []byte) int {
	if len(b) == 0 {
		return -1
	}
	return int(b[0])
}

// encodeValue returns the stored value for a payload: a time header that
// the writer fills in (putValueTime) and the payload.
func encodeValue(data []byte) []byte {
	v := make([]byte, valueHdrLen+len(data))
	copy(v[valueHdrLen:], data)
	return v
}

func putValueTime(v []byte, t time.Time) {
	binary.BigEndian.PutUint64(v, uint64(t.UnixNano()))
}

// valueTime returns the append time stored in a record value.
func valueTime(v []byte) (time.Time, error) {
	if len(v) < valueHdrLen {
		return time.Time{}, fmt.Errorf("bad record: %d bytes", len(v))
	}
	return time.Unix(0, int64(binary.BigEndian.Uint64(v))), nil
}

// decodeValue splits a record value into its time and payload. The
// payload aliases v.
func decodeValue(v []byte) (time.Time, []byte, error) {
	t, err := valueTime(v)
	if err != nil {
		return t, nil, err
	}
	return t, v[valueHdrLen:], nil
}

// load checks the format version and reads every stream's meta.
func (q *Queue) load() error {
	return q.db.Update(func(txn *badger.Txn) error {
		item, err := txn.Get(versionKey)
		switch {
		case errors.Is(err, badger.ErrKeyNotFound):
			it := txn.NewIterator(badger.IteratorOptions{})
			it.Rewind()
			empty := !it.Valid()
			it.Close()
			if !empty {
				return errors.New("directory holds a badger store that is not an edgegw buffer")
			}
			return txn.Set(versionKey, []byte(formatVersion))
		case err != nil:
			return err
		}
		v, err := item.ValueCopy(nil)
		if err != nil {
			return err
		}
		if string(v) != formatVersion {
			return fmt.Errorf("store format %q, this build reads %q", v, formatVersion)
		}
		it := txn.NewIterator(badger.IteratorOptions{PrefetchValues: false, Prefix: []byte{prefixMeta}})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			id, ok := parseMetaKey(item.Key())
			if !ok {
				return fmt.Errorf("bad meta key %x", item.Key())
			}
			v, err := item.ValueCopy(nil)
			if err != nil {
				return err
			}
			m, name, err := decodeMeta(v)
			if err != nil {
				return fmt.Errorf("stream %d: %w", id, err)
			}
			if _, dup := q.streams[name]; dup {
				return fmt.Errorf("stream %q stored twice", name)
			}
			q.streams[name] = &stream{name: name, id: id, m: m, notify: make(chan struct{})}
			q.total += m.size()
			q.nextID = max(q.nextID, id+1)
		}
		return nil
	})
}
