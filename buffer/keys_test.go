package buffer

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	badger "github.com/dgraph-io/badger/v4"
	"github.com/edgegw/edgegw"
)

func TestKeysSortByStreamThenSequence(t *testing.T) {
	keys := [][]byte{
		dataKey(1, 1), dataKey(1, 2), dataKey(1, 255), dataKey(1, 256), dataKey(1, 1<<40),
		dataKey(2, 0), dataKey(256, 1), dataKey(1<<32-1, 1<<64-1),
	}
	for i := 1; i < len(keys); i++ {
		if bytes.Compare(keys[i-1], keys[i]) >= 0 {
			t.Fatalf("key %d %x !< key %d %x", i-1, keys[i-1], i, keys[i])
		}
	}
	for _, k := range keys {
		id, seq, ok := parseDataKey(k)
		if !ok || !bytes.Equal(dataKey(id, seq), k) || !bytes.HasPrefix(k, dataPrefix(id)) {
			t.Fatalf("round trip of %x", k)
		}
	}
	if bytes.HasPrefix(dataKey(256, 1), dataPrefix(1)) || bytes.HasPrefix(metaKey(1), dataPrefix(1)) {
		t.Fatal("one stream's prefix matches another key")
	}
	if _, _, ok := parseDataKey(metaKey(1)); ok {
		t.Fatal("meta key parsed as data key")
	}
}

func TestMetaRoundTrip(t *testing.T) {
	m := meta{last: 99, head: [numClasses]uint64{5, 7}, count: [numClasses]int64{90, 3}, bytes: [numClasses]int64{9000, 300}}
	for _, name := range []string{"a", "dev/with/slashes", "\x00\xff", strings.Repeat("x", MaxStreamName)} {
		got, gotName, err := decodeMeta(m.encode(name))
		if err != nil || got != m || gotName != name {
			t.Fatalf("%q: got %+v %q %v", name, got, gotName, err)
		}
	}
	if m.first() != 5 || (&meta{last: 9}).first() != 10 || m.records() != 93 || m.size() != 9300 {
		t.Fatal("meta helpers")
	}
	bad := []meta{
		{last: 3, head: [numClasses]uint64{4, 0}, count: [numClasses]int64{1, 0}},  // head after last
		{last: 3, head: [numClasses]uint64{0, 0}, count: [numClasses]int64{1, 0}},  // records without a head
		{last: 3, head: [numClasses]uint64{1, 0}, count: [numClasses]int64{0, 0}},  // a head without records
		{last: 3, head: [numClasses]uint64{1, 0}, count: [numClasses]int64{-1, 0}}, // negative
		{last: 3, head: [numClasses]uint64{1, 0}, count: [numClasses]int64{4, 0}},  // more than assigned
	}
	for i, b := range bad {
		if _, _, err := decodeMeta(b.encode("x")); !errors.Is(err, errBadMeta) {
			t.Errorf("bad meta %d accepted: %v", i, err)
		}
	}
	for _, v := range [][]byte{nil, {metaVersion}, m.encode("")} {
		if _, _, err := decodeMeta(v); err == nil {
			t.Errorf("%x accepted", v)
		}
	}
}

func TestValueRoundTrip(t *testing.T) {
	v := encodeValue([]byte("payload"))
	at := time.Date(2030, 1, 2, 3, 4, 5, 6, time.UTC)
	putValueTime(v, at)
	got, data, err := decodeValue(v)
	if err != nil || !got.Equal(at) || string(data) != "payload" {
		t.Fatalf("got %v %q %v", got, data, err)
	}
	if _, _, err := decodeValue(v[:7]); err == nil {
		t.Fatal("short value accepted")
	}
}

// FuzzDecodeMeta feeds arbitrary bytes to the meta decoder: it must not
// panic, and what it accepts must encode back to the same bytes.
func FuzzDecodeMeta(f *testing.F) {
	m := meta{last: 10, head: [numClasses]uint64{3, 0}, count: [numClasses]int64{8, 0}, bytes: [numClasses]int64{800, 0}}
	f.Add(m.encode("dev-1"))
	f.Add(m.encode("a/b"))
	f.Add([]byte{metaVersion})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, v []byte) {
		got, name, err := decodeMeta(v)
		if err != nil {
			return
		}
		if !bytes.Equal(got.encode(name), v) {
			t.Fatalf("%x decodes to %+v %q, which encodes differently", v, got, name)
		}
		if got.first() < 1 || got.first() > got.last+1 {
			t.Fatalf("first %d outside 1..%d", got.first(), got.last+1)
		}
	})
}

// FuzzParseKeys feeds arbitrary bytes to the key and value parsers.
func FuzzParseKeys(f *testing.F) {
	f.Add(dataKey(1, 2))
	f.Add(metaKey(7))
	f.Add(encodeValue([]byte("x")))
	f.Add([]byte{prefixData})
	f.Fuzz(func(t *testing.T, k []byte) {
		if id, seq, ok := parseDataKey(k); ok && !bytes.Equal(dataKey(id, seq), k) {
			t.Fatalf("data key %x round trip", k)
		}
		if id, ok := parseMetaKey(k); ok && !bytes.Equal(metaKey(id), k) {
			t.Fatalf("meta key %x round trip", k)
		}
		if _, data, err := decodeValue(k); err == nil && len(data) != len(k)-valueHdrLen {
			t.Fatalf("value %x: payload of %d bytes", k, len(data))
		}
	})
}

func TestConfig(t *testing.T) {
	var c Config
	c.SetDefaults()
	if c.MaxBytes != 1<<30 || c.MaxAge != 7*24*time.Hour || c.AlarmMaxAge != 30*24*time.Hour ||
		c.MinFreeBytes != 64<<20 || c.SweepInterval != time.Minute || c.DropLogInterval != time.Minute {
		t.Fatalf("defaults %+v", c)
	}
	if err := c.Validate(); err == nil || err.Error() != "dir: must be set" {
		t.Fatalf("no dir: %v", err)
	}
	long := Config{MaxAge: 60 * 24 * time.Hour}
	long.SetDefaults()
	if long.AlarmMaxAge != long.MaxAge {
		t.Fatalf("alarm max age %v below max age %v", long.AlarmMaxAge, long.MaxAge)
	}
	bad := Config{Dir: "/x", MaxBytes: -1, MaxAge: -time.Second, AlarmMaxAge: -2 * time.Second,
		MinFreeBytes: -5, SweepInterval: -1, DropLogInterval: -1}
	err := bad.Validate()
	var paths []string
	for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
		var fe *edgegw.FieldError
		if !errors.As(e, &fe) {
			t.Fatalf("%v is not a FieldError", e)
		}
		paths = append(paths, fe.Path)
	}
	want := "max_bytes max_age alarm_max_age min_free_bytes sweep_interval drop_log_interval"
	if strings.Join(paths, " ") != want {
		t.Fatalf("paths %v, want %s", paths, want)
	}
	if !strings.Contains(err.Error(), "max_bytes: must be > 0 (got -1)") {
		t.Fatalf("message: %v", err)
	}
	if _, err := Open(bad, nil); err == nil {
		t.Fatal("Open accepted a bad config")
	}
}

func TestOpenRefusesForeignStore(t *testing.T) {
	dir := t.TempDir()
	q := open(t, Config{Dir: dir})
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	// Another version of the format.
	db, err := openBadger(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := setRaw(db, versionKey, []byte("edgegw-buffer/999")); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(Config{Dir: dir}, nil); err == nil || !strings.Contains(err.Error(), "edgegw-buffer/999") {
		t.Fatalf("open of another format: %v", err)
	}

	// A damaged stream meta.
	db, err = openBadger(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := setRaw(db, versionKey, []byte(formatVersion)); err != nil {
		t.Fatal(err)
	}
	if err := setRaw(db, metaKey(1), []byte{metaVersion, 1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(Config{Dir: dir}, nil); !errors.Is(err, errBadMeta) {
		t.Fatalf("open with a damaged meta: %v", err)
	}

	// Somebody else's badger store.
	dir = t.TempDir()
	if db, err = openBadger(dir); err != nil {
		t.Fatal(err)
	}
	if err := setRaw(db, []byte("theirs"), []byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(Config{Dir: dir}, nil); err == nil || !strings.Contains(err.Error(), "not an edgegw buffer") {
		t.Fatalf("open of a foreign store: %v", err)
	}
}

func openBadger(dir string) (*badger.DB, error) {
	return badger.Open(badgerOptions(dir, slog.New(slog.DiscardHandler)))
}

func setRaw(db *badger.DB, k, v []byte) error {
	return db.Update(func(txn *badger.Txn) error { return txn.Set(k, v) })
}
