package gateway

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"sync"

	"github.com/edgegw/edgegw"
)

// twinStore keeps the last known twin of each relayed identity on disk, so
// that a relayed device's twin GET is answered while the hub is away. It
// learns from the hub (the desired patches northbound passes down, and the
// whole desired section after each connect) and from the device (its
// reported patches, applied once they are queued for the hub). One file
// per identity, <state_dir>/twins/<escaped id>.json, replaced atomically.
type twinStore struct {
	dir string
	log *slog.Logger

	mu    sync.Mutex
	twins map[edgegw.DeviceID]*twin
}

// twin is one identity's last known twin; both sections carry "$version".
type twin struct {
	Desired  map[string]any `json:"desired"`
	Reported map[string]any `json:"reported"`
}

func newTwinStore(dir string, log *slog.Logger) *twinStore {
	return &twinStore{dir: dir, log: log, twins: map[edgegw.DeviceID]*twin{}}
}

// Twin returns the identity's twin as the hub's GET answers it.
func (s *twinStore) Twin(id edgegw.DeviceID) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, _ := json.Marshal(s.get(id))
	return b
}

// Reported merges a reported patch into the identity's twin and returns the
// reported $version it makes.
func (s *twinStore) Reported(id edgegw.DeviceID, patch []byte) int64 {
	p, err := decodeJSONObject(patch)
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.get(id)
	v := version(t.Reported) + 1
	if err == nil {
		delete(p, "$version")
		mergePatch(t.Reported, p)
	}
	t.Reported["$version"] = v
	s.save(id, t)
	return v
}

// Desired records desired properties from the hub: a patch, or the whole
// section (full) read after a connect. A version older than the one known
// is ignored.
func (s *twinStore) Desired(id edgegw.DeviceID, doc []byte, v int64, full bool) {
	p, err := decodeJSONObject(doc)
	if err != nil {
		return
	}
	delete(p, "$version")
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.get(id)
	if v > 0 && v < version(t.Desired) {
		return
	}
	if full {
		t.Desired = p
	} else {
		mergePatch(t.Desired, p)
	}
	if v > 0 {
		t.Desired["$version"] = v
	}
	s.save(id, t)
}

// Seed takes the reported section of a twin read from the hub when the
// identity's twin has no reported properties yet.
func (s *twinStore) Seed(id edgegw.DeviceID, doc []byte) {
	var tw struct {
		Reported json.RawMessage `json:"reported"`
	}
	if json.Unmarshal(doc, &tw) != nil {
		return
	}
	rep, err := decodeJSONObject(tw.Reported)
	if err != nil || len(rep) <= 1 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.get(id)
	if len(t.Reported) > 1 { // has properties besides $version
		return
	}
	t.Reported = rep
	if version(rep) == 0 {
		rep["$version"] = int64(1)
	}
	s.save(id, t)
}

// get returns the identity's twin, loading it from disk on first use.
// Called with s.mu held.
func (s *twinStore) get(id edgegw.DeviceID) *twin {
	if t := s.twins[id]; t != nil {
		return t
	}
	t := &twin{}
	b, err := os.ReadFile(s.path(id))
	switch {
	case err == nil:
		d := json.NewDecoder(bytes.NewReader(b))
		d.UseNumber()
		if err := d.Decode(t); err != nil {
			s.log.Warn("twin file unreadable; starting from an empty twin", "identity", id, "err", err)
			t = &twin{}
		}
	case !os.IsNotExist(err):
		s.log.Warn("twin file unreadable; starting from an empty twin", "identity", id, "err", err)
	}
	if t.Desired == nil {
		t.Desired = map[string]any{"$version": int64(1)}
	}
	if t.Reported == nil {
		t.Reported = map[string]any{"$version": int64(1)}
	}
	s.twins[id] = t
	return t
}

func (s *twinStore) path(id edgegw.DeviceID) string {
	return filepath.Join(s.dir, url.PathEscape(string(id))+".json")
}

// save writes the identity's twin: a temporary file, fsync, rename. A
// failure is logged; the twin in memory stays right and the next change
// writes it again. Called with s.mu held.
func (s *twinStore) save(id edgegw.DeviceID, t *twin) {
	if err := s.write(s.path(id), t); err != nil {
		s.log.Warn("cannot save the twin; answers go on from memory", "identity", id, "err", err)
	}
}

func (s *twinStore) write(path string, t *twin) error {
	b, err := json.Marshal(t)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(s.dir, 0o750); err != nil {
		return err
	}
	f, err := os.CreateTemp(s.dir, ".twin-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// version returns a section's "$version".
func version(sec map[string]any) int64 {
	switch v := sec["$version"].(type) {
	case int64:
		return v
	case json.Number:
		n, _ := v.Int64()
		return n
	case float64:
		return int64(v)
	}
	return 0
}

func decodeJSONObject(b []byte) (map[string]any, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil || m == nil {
		return nil, fmt.Errorf("not a JSON object")
	}
	return m, nil
}

// mergePatch applies a twin patch as IoT Hub does: null removes a
// property, an object merges into an object, anything else replaces.
func mergePatch(dst, patch map[string]any) {
	for k, v := range patch {
		switch pv := v.(type) {
		case nil:
			delete(dst, k)
		case map[string]any:
			if dv, ok := dst[k].(map[string]any); ok {
				mergePatch(dv, pv)
				continue
			}
			nv := map[string]any{}
			mergePatch(nv, pv)
			dst[k] = nv
		default:
			dst[k] = v
		}
	}
}
