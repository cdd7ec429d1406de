package hubsim

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"time"
)

// restRoutes registers IoT Hub's service REST surface used by azure-iothub
// (api-version 2021-04-12; any api-version is accepted).
func (h *Hub) restRoutes(mux *http.ServeMux) {
	read := []Right{RightRegistryRead, RightRegistryWrite}
	write := []Right{RightRegistryWrite}
	svc := []Right{RightServiceConnect}
	twinRead := []Right{RightServiceConnect, RightRegistryRead, RightRegistryWrite}
	for _, r := range []struct {
		pattern string
		rights  []Right
		fn      http.HandlerFunc
	}{
		{"GET /devices", read, h.restListDevices},
		{"GET /devices/{$}", read, h.restListDevices},
		{"GET /devices/{id}", read, h.restGetDevice},
		{"PUT /devices/{id}", write, h.restPutDevice},
		{"DELETE /devices/{id}", write, h.restDeleteDevice},
		{"GET /devices/{id}/modules", read, h.restListModules},
		{"GET /devices/{id}/modules/{mid}", read, h.restGetDevice},
		{"PUT /devices/{id}/modules/{mid}", write, h.restPutDevice},
		{"DELETE /devices/{id}/modules/{mid}", write, h.restDeleteDevice},
		{"DELETE /devices/{id}/commands", svc, h.restPurgeC2D},
		{"GET /twins/{id}", twinRead, h.restGetTwin},
		{"PATCH /twins/{id}", svc, h.restPatchTwin},
		{"PUT /twins/{id}", svc, h.restPatchTwin},
		{"GET /twins/{id}/modules/{mid}", twinRead, h.restGetTwin},
		{"PATCH /twins/{id}/modules/{mid}", svc, h.restPatchTwin},
		{"PUT /twins/{id}/modules/{mid}", svc, h.restPatchTwin},
		{"POST /twins/{id}/methods", svc, h.restInvoke},
		{"POST /twins/{id}/modules/{mid}/methods", svc, h.restInvoke},
		{"POST /edgegw/devices/{id}/messages", svc, h.restSendC2D},
	} {
		mux.Handle(r.pattern, h.serviceAuth(r.rights, r.fn))
	}
}

// restDevice is IoT Hub's Device JSON.
type restDevice struct {
	DeviceID                   string          `json:"deviceId"`
	ModuleID                   string          `json:"moduleId,omitempty"`
	GenerationID               string          `json:"generationId"`
	ETag                       string          `json:"etag"`
	ConnectionState            string          `json:"connectionState"`
	Status                     string          `json:"status"`
	StatusReason               *string         `json:"statusReason"`
	ConnectionStateUpdatedTime string          `json:"connectionStateUpdatedTime"`
	StatusUpdatedTime          string          `json:"statusUpdatedTime"`
	LastActivityTime           string          `json:"lastActivityTime"`
	CloudToDeviceMessageCount  int             `json:"cloudToDeviceMessageCount"`
	Authentication             restAuth        `json:"authentication"`
	Capabilities               *map[string]any `json:"capabilities,omitempty"`
}

type restAuth struct {
	SymmetricKey   restKeys    `json:"symmetricKey"`
	X509Thumbprint thumbprints `json:"x509Thumbprint"`
	Type           string      `json:"type"`
}

type restKeys struct {
	PrimaryKey   *string `json:"primaryKey"`
	SecondaryKey *string `json:"secondaryKey"`
}

func str(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

func (h *Hub) restDeviceLocked(id *ident) restDevice {
	d := id.dev
	rd := restDevice{
		DeviceID: d.ID, ModuleID: d.ModuleID, GenerationID: d.GenerationID, ETag: d.ETag,
		ConnectionState: "Disconnected", Status: statusOf(d),
		ConnectionStateUpdatedTime: timeString(id.connectedAt), StatusUpdatedTime: timeString(d.Updated),
		LastActivityTime: timeString(id.lastActivity), CloudToDeviceMessageCount: len(id.c2d),
		Authentication: restAuth{Type: string(d.Auth)},
	}
	if id.conn != nil {
		rd.ConnectionState = "Connected"
	}
	if d.Auth == AuthSAS {
		p, s := d.PrimaryKey, d.SecondaryKey
		rd.Authentication.SymmetricKey = restKeys{&p, &s}
	}
	if d.Auth == AuthSelfSigned {
		p, s := d.PrimaryThumbprint, d.SecondaryThumbprint
		rd.Authentication.X509Thumbprint = thumbprints{&p, &s}
	}
	if d.ModuleID == "" {
		rd.Capabilities = &map[string]any{"iotEdge": false}
	}
	return rd
}

func (h *Hub) restListDevices(w http.ResponseWriter, _ *http.Request) {
	h.listIdents(w, func(d Device) bool { return d.ModuleID == "" })
}

func (h *Hub) restListModules(w http.ResponseWriter, r *http.Request) {
	dev := r.PathValue("id")
	h.listIdents(w, func(d Device) bool { return d.ID == dev && d.ModuleID != "" })
}

func (h *Hub) listIdents(w http.ResponseWriter, keep func(Device) bool) {
	h.mu.Lock()
	out := []restDevice{}
	for _, k := range h.sortedKeysLocked() {
		if id := h.idents[k]; keep(id.dev) {
			out = append(out, h.restDeviceLocked(id))
		}
	}
	h.mu.Unlock()
	writeJSON(w, http.StatusOK, out)
}

func (h *Hub) restGetDevice(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	id, ok := h.idents[identityKey(r.PathValue("id"), r.PathValue("mid"))]
	var rd restDevice
	if ok {
		rd = h.restDeviceLocked(id)
	}
	h.mu.Unlock()
	if !ok {
		writeError(w, http.StatusNotFound, "DeviceNotFound", 404001, "Device "+r.PathValue("id")+" not registered")
		return
	}
	writeJSON(w, http.StatusOK, rd)
}

// restPutDevice creates (no If-Match) or replaces (If-Match) an identity.
// Empty keys are generated.
func (h *Hub) restPutDevice(w http.ResponseWriter, r *http.Request) {
	var in restDevice
	if err := decodeBody(r, &in); err != nil {
		writeError(w, http.StatusBadRequest, "ArgumentInvalid", 400004, err.Error())
		return
	}
	d := Device{
		ID: r.PathValue("id"), ModuleID: r.PathValue("mid"), Auth: AuthType(in.Authentication.Type),
		PrimaryKey: str(in.Authentication.SymmetricKey.PrimaryKey), SecondaryKey: str(in.Authentication.SymmetricKey.SecondaryKey),
		PrimaryThumbprint:   str(in.Authentication.X509Thumbprint.Primary),
		SecondaryThumbprint: str(in.Authentication.X509Thumbprint.Secondary),
		Disabled:            strings.EqualFold(in.Status, "disabled"),
	}
	if d.Auth == "none" {
		d.Auth = ""
	}
	if in.DeviceID != "" && in.DeviceID != d.ID {
		writeError(w, http.StatusBadRequest, "ArgumentInvalid", 400004, "deviceId in body does not match the URL")
		return
	}
	var err error
	if etag := r.Header.Get("If-Match"); etag != "" {
		_, err = h.UpdateDevice(d, strings.Trim(etag, `"`))
	} else {
		_, err = h.AddDevice(d)
	}
	if err != nil {
		writeRegistryError(w, err)
		return
	}
	h.restGetDevice(w, r)
}

func (h *Hub) restDeleteDevice(w http.ResponseWriter, r *http.Request) {
	etag := strings.Trim(r.Header.Get("If-Match"), `"`)
	if err := h.DeleteDevice(r.PathValue("id"), r.PathValue("mid"), etag); err != nil {
		writeRegistryError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (h *Hub) restPurgeC2D(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	id, ok := h.idents[r.PathValue("id")]
	n := 0
	if ok {
		n = len(id.c2d)
		id.c2d = nil
		h.dirtyLocked()
	}
	h.mu.Unlock()
	if !ok {
		writeError(w, http.StatusNotFound, "DeviceNotFound", 404001, "Device "+r.PathValue("id")+" not registered")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"totalMessagesPurged": n, "deviceId": r.PathValue("id")})
}

func writeRegistryError(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, ErrDeviceNotFound):
		writeError(w, http.StatusNotFound, "DeviceNotFound", 404001, err.Error())
	case errors.Is(err, ErrDeviceExists):
		writeError(w, http.StatusConflict, "DeviceAlreadyExists", 409001, err.Error())
	case errors.Is(err, ErrETagMismatch):
		writeError(w, http.StatusPreconditionFailed, "PreconditionFailed", 412002, err.Error())
	case errors.Is(err, ErrQueueFull):
		writeError(w, http.StatusForbidden, "DeviceMaximumQueueDepthExceeded", 403004, err.Error())
	case errors.Is(err, ErrMessageTooLarge):
		writeError(w, http.StatusRequestEntityTooLarge, "MessageTooLarge", 413001, err.Error())
	default:
		writeError(w, http.StatusBadRequest, "ArgumentInvalid", 400004, err.Error())
	}
}

// decodeBody decodes a JSON request body of at most 1 MiB.
func decodeBody(r *http.Request, v any) error {
	b, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		return err
	}
	if len(strings.TrimSpace(string(b))) == 0 {
		return nil
	}
	return json.Unmarshal(b, v)
}

func secondsOr(v *float64, def time.Duration) time.Duration {
	if v == nil {
		return def
	}
	return time.Duration(*v * float64(time.Second))
}
