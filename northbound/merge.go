package northbound

import (
	"bytes"
	"encoding/json"
	"io"
)

// mergeReported merges two reported-property patches, a then b, into one
// patch with the same effect at the hub (JSON merge patch, where null
// deletes). It reports false when no single patch has that effect: b puts
// an object where a set a non-object (a null or a value), because the hub
// would merge b's object into what was there before a. Numbers keep their
// exact text.
func mergeReported(a, b []byte) ([]byte, bool) {
	da, ok := decodeObject(a)
	if !ok {
		return nil, false
	}
	db, ok := decodeObject(b)
	if !ok {
		return nil, false
	}
	if !mergeable(da, db) {
		return nil, false
	}
	mergeInto(da, db)
	out, err := json.Marshal(da)
	if err != nil {
		return nil, false
	}
	return out, true
}

func decodeObject(b []byte) (map[string]any, bool) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil || m == nil {
		return nil, false
	}
	// Nothing but white space may follow (More is false before a stray
	// '}' or ']', so it cannot tell).
	if _, err := d.Token(); err != io.EOF {
		return nil, false
	}
	return m, true
}

// mergeable reports whether src can be merged into dst without the
// conflict described at mergeReported.
func mergeable(dst, src map[string]any) bool {
	for k, sv := range src {
		so, sIsObj := sv.(map[string]any)
		dv, present := dst[k]
		if !sIsObj || !present {
			continue
		}
		do, dIsObj := dv.(map[string]any)
		if !dIsObj || !mergeable(do, so) {
			return false
		}
	}
	return true
}

// mergeInto applies src onto dst: objects merge recursively, anything else
// (null included, it means delete) replaces.
func mergeInto(dst, src map[string]any) {
	for k, sv := range src {
		if so, ok := sv.(map[string]any); ok {
			if do, ok := dst[k].(map[string]any); ok {
				mergeInto(do, so)
				continue
			}
		}
		dst[k] = sv
	}
}
