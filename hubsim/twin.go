package hubsim

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// MaxTwinSection is IoT Hub's limit for desired and for reported properties.
const MaxTwinSection = 32 << 10

// twinState is the stored twin of one identity. Desired and Reported hold
// properties without $version/$metadata.
type twinState struct {
	Tags            map[string]any `json:"tags"`
	Desired         map[string]any `json:"desired"`
	Reported        map[string]any `json:"reported"`
	DesiredVersion  int64          `json:"desiredVersion"`
	ReportedVersion int64          `json:"reportedVersion"`
	Version         int64          `json:"version"`
	DesiredUpdated  time.Time      `json:"desiredUpdated"`
	ReportedUpdated time.Time      `json:"reportedUpdated"`
}

func newTwinState() twinState {
	return twinState{Tags: map[string]any{}, Desired: map[string]any{}, Reported: map[string]any{},
		DesiredVersion: 1, ReportedVersion: 1, Version: 1}
}

// etagOf renders a version as IoT Hub renders etags: base64 of 8 bytes.
func etagOf(v int64) string {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(v))
	return base64.StdEncoding.EncodeToString(b[:])
}

// mergePatch applies a JSON merge patch: null deletes, objects merge.
func mergePatch(dst, patch map[string]any) {
	for k, v := range patch {
		if strings.HasPrefix(k, "$") {
			continue
		}
		switch pv := v.(type) {
		case nil:
			delete(dst, k)
		case map[string]any:
			sub, ok := dst[k].(map[string]any)
			if !ok {
				sub = map[string]any{}
				dst[k] = sub
			}
			mergePatch(sub, pv)
		default:
			dst[k] = v
		}
	}
}

// decodeObject decodes a JSON object, keeping numbers exact.
func decodeObject(b []byte) (map[string]any, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		return nil, err
	}
	if m == nil {
		return nil, fmt.Errorf("not a JSON object")
	}
	if _, err := d.Token(); err != io.EOF { // More cannot see a stray '}' or ']'
		return nil, fmt.Errorf("trailing data after JSON object")
	}
	return m, nil
}

func withVersion(m map[string]any, v int64) map[string]any {
	out := make(map[string]any, len(m)+1)
	for k, x := range m {
		out[k] = x
	}
	out["$version"] = v
	return out
}

func jsonSize(m map[string]any) int {
	b, _ := json.Marshal(m)
	return len(b)
}

// twinError is the body IoT Hub sends with a failed twin request; the Node
// SDK only recognises an error by its errorCode field.
func twinError(code int, msg string) []byte {
	b, _ := json.Marshal(map[string]any{"errorCode": code, "message": msg})
	return b
}

// handleTwin answers a device twin request. Every $rid gets an answer (the
// Node SDK never times out a twin request), delivered if the device holds
// the $iothub/twin/res/# subscription. A reported patch is applied either way.
func (h *Hub) handleTwin(c *conn, t devTopic, body []byte) {
	status, resp, version := 200, []byte(nil), int64(0)
	switch t.twinOp {
	case "GET":
		h.mu.Lock()
		id, ok := h.idents[c.key]
		if ok {
			resp, _ = json.Marshal(map[string]any{
				"desired":  withVersion(id.twin.Desired, id.twin.DesiredVersion),
				"reported": withVersion(id.twin.Reported, id.twin.ReportedVersion),
			})
		}
		h.mu.Unlock()
		if !ok {
			status, resp = 404, twinError(404001, "device not found")
		}
	case "PATCH/properties/reported":
		status, resp, version = h.patchReported(c.key, body)
	default:
		status, resp = 400, twinError(400004, "unsupported twin operation "+strconv.Quote(t.twinOp))
	}
	if !c.subscribed(filterTwinRes) {
		h.log.Debug("twin request without a response subscription", "device", c.key)
		return
	}
	topic := "$iothub/twin/res/" + strconv.Itoa(status) + "/?$rid=" + t.rid
	if version != 0 {
		topic += "&$version=" + strconv.FormatInt(version, 10)
	}
	if err := c.writeQoS0(topic, resp); err != nil {
		h.log.Debug("twin response not written", "device", c.key, "err", err)
	}
}

func (h *Hub) patchReported(key string, body []byte) (int, []byte, int64) {
	patch, err := decodeObject(body)
	if err != nil {
		return 400, twinError(400004, "malformed JSON: "+err.Error()), 0
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	id, ok := h.idents[key]
	if !ok {
		return 404, twinError(404001, "device not found"), 0
	}
	next := cloneMap(id.twin.Reported)
	mergePatch(next, patch)
	if jsonSize(next) > MaxTwinSection {
		return 400, twinError(400004, "reported properties exceed 32 KB"), 0
	}
	id.twin.Reported = next
	id.twin.ReportedVersion++
	id.twin.Version++
	id.twin.ReportedUpdated = time.Now().UTC()
	h.dirtyLocked()
	h.signalLocked()
	return 204, nil, id.twin.ReportedVersion
}

func cloneMap(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		if sub, ok := v.(map[string]any); ok {
			v = cloneMap(sub)
		}
		out[k] = v
	}
	return out
}

// PatchDesired merges patch into the desired properties of a device (module
// "") or module, bumps $version, and pushes the patch to the identity if it
// is connected and subscribed to desired-property updates. It returns the
// new desired $version.
func (h *Hub) PatchDesired(deviceID, moduleID string, patch map[string]any) (int64, error) {
	tw, err := h.patchTwin(identityKey(deviceID, moduleID), "", twinPatch{Desired: patch}, false)
	if err != nil {
		return 0, err
	}
	return tw.desiredVersion(), nil
}

// twinPatch is a service-side change of a twin.
type twinPatch struct {
	Tags    map[string]any
	Desired map[string]any
}

// patchTwin applies a service patch (replace=true: PUT semantics) under the
// etag, then pushes the desired change to the device.
func (h *Hub) patchTwin(key, etag string, p twinPatch, replace bool) (Twin, error) {
	h.twinMu.Lock()
	defer h.twinMu.Unlock()
	h.mu.Lock()
	id, ok := h.idents[key]
	if !ok {
		h.mu.Unlock()
		return Twin{}, fmt.Errorf("%w: %s", ErrDeviceNotFound, key)
	}
	etag = strings.Trim(etag, `"`)
	if etag != "" && etag != "*" && etag != etagOf(id.twin.Version) {
		h.mu.Unlock()
		return Twin{}, ErrETagMismatch
	}
	var push map[string]any
	if replace {
		if p.Tags != nil {
			id.twin.Tags = cloneMap(p.Tags)
		}
		if p.Desired != nil {
			push = cloneMap(p.Desired)
			for k := range id.twin.Desired {
				if _, keep := p.Desired[k]; !keep && !strings.HasPrefix(k, "$") {
					push[k] = nil
				}
			}
		}
	} else {
		if p.Tags != nil {
			mergePatch(id.twin.Tags, p.Tags)
		}
		push = p.Desired
	}
	if push != nil {
		next := cloneMap(id.twin.Desired)
		mergePatch(next, push)
		if jsonSize(next) > MaxTwinSection {
			h.mu.Unlock()
			return Twin{}, fmt.Errorf("%w: desired properties exceed 32 KB", ErrBadRequest)
		}
		id.twin.Desired = next
		id.twin.DesiredVersion++
		id.twin.DesiredUpdated = time.Now().UTC()
	}
	id.twin.Version++
	tw := h.twinViewLocked(id)
	c := id.conn
	v := id.twin.DesiredVersion
	h.dirtyLocked()
	h.signalLocked()
	h.mu.Unlock()
	if push != nil && c != nil && c.subscribed(filterTwinDesired) {
		b, _ := json.Marshal(withVersion(push, v))
		if err := c.writeQoS0("$iothub/twin/PATCH/properties/desired/?$version="+strconv.FormatInt(v, 10), b); err != nil {
			h.log.Debug("desired patch not pushed", "device", key, "err", err)
		}
	}
	return tw, nil
}
