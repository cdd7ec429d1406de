package hubsim

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/edgegw/edgegw"
)

func (h *Hub) restGetTwin(w http.ResponseWriter, r *http.Request) {
	tw, err := h.Twin(r.PathValue("id"), r.PathValue("mid"))
	if err != nil {
		writeRegistryError(w, err)
		return
	}
	w.Header().Set("ETag", `"`+tw.ETag+`"`)
	writeJSON(w, http.StatusOK, tw)
}

// restPatchTwin handles PATCH (merge) and PUT (replace) of tags and desired
// properties under If-Match.
func (h *Hub) restPatchTwin(w http.ResponseWriter, r *http.Request) {
	b, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		writeError(w, http.StatusBadRequest, "ArgumentInvalid", 400004, err.Error())
		return
	}
	var in struct {
		Tags       map[string]any `json:"tags"`
		Properties struct {
			Desired map[string]any `json:"desired"`
		} `json:"properties"`
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	if err := d.Decode(&in); err != nil {
		writeError(w, http.StatusBadRequest, "ArgumentInvalid", 400004, "malformed twin: "+err.Error())
		return
	}
	key := identityKey(r.PathValue("id"), r.PathValue("mid"))
	tw, err := h.patchTwin(key, r.Header.Get("If-Match"), twinPatch{Tags: in.Tags, Desired: in.Properties.Desired}, r.Method == http.MethodPut)
	if err != nil {
		writeRegistryError(w, err)
		return
	}
	w.Header().Set("ETag", `"`+tw.ETag+`"`)
	writeJSON(w, http.StatusOK, tw)
}

// restInvoke handles POST /twins/{id}/methods: it blocks until the device
// answers, 404 DeviceNotOnline (404103) or 504 GatewayTimeout (504101).
func (h *Hub) restInvoke(w http.ResponseWriter, r *http.Request) {
	var in struct {
		MethodName      string          `json:"methodName"`
		Payload         json.RawMessage `json:"payload"`
		ResponseTimeout *float64        `json:"responseTimeoutInSeconds"`
		ConnectTimeout  *float64        `json:"connectTimeoutInSeconds"`
	}
	if err := decodeBody(r, &in); err != nil || in.MethodName == "" {
		writeError(w, http.StatusBadRequest, "ArgumentInvalid", 400004, "body needs a methodName")
		return
	}
	res, err := h.InvokeMethod(r.Context(), r.PathValue("id"), r.PathValue("mid"), MethodRequest{
		Name: in.MethodName, Payload: in.Payload,
		ResponseTimeout: secondsOr(in.ResponseTimeout, 30*time.Second),
		ConnectTimeout:  secondsOr(in.ConnectTimeout, 0),
	})
	switch {
	case err == nil:
		writeJSON(w, http.StatusOK, res)
	case errors.Is(err, ErrDeviceNotOnline):
		writeError(w, http.StatusNotFound, "DeviceNotOnline", 404103, "Timed out waiting for device to connect.")
	case errors.Is(err, ErrMethodTimeout):
		writeError(w, http.StatusGatewayTimeout, "GatewayTimeout", 504101, "Timed out waiting for the response from device.")
	case errors.Is(err, ErrBadRequest):
		writeError(w, http.StatusBadRequest, "ArgumentInvalid", 400004, err.Error())
	default:
		writeRegistryError(w, err)
	}
}

// restSendC2D handles POST /edgegw/devices/{id}/messages: the request body
// is the message body; headers set properties the way IoT Hub's HTTPS API
// names them: iothub-messageid, iothub-correlationid, iothub-userid,
// iothub-ack, iothub-expiry (RFC 3339), Content-Type and Content-Encoding
// for $.ct/$.ce, and iothub-app-{name} for application properties (HTTP
// lower-cases header names and forbids spaces in them, so these arrive
// lower-case). Properties whose names keep their case and spaces go in one
// header as a JSON object of strings: iothub-app-properties-json:
// {"Alert Level":"High"}; they come after the iothub-app-{name} ones.
func (h *Hub) restSendC2D(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, MaxC2DSize+1))
	if err != nil {
		writeError(w, http.StatusBadRequest, "ArgumentInvalid", 400004, err.Error())
		return
	}
	m := C2DMessage{
		Body:            body,
		MessageID:       r.Header.Get("iothub-messageid"),
		CorrelationID:   r.Header.Get("iothub-correlationid"),
		UserID:          r.Header.Get("iothub-userid"),
		Ack:             r.Header.Get("iothub-ack"),
		ContentType:     r.Header.Get("Content-Type"),
		ContentEncoding: r.Header.Get("Content-Encoding"),
	}
	if s := r.Header.Get("iothub-expiry"); s != "" {
		if m.Expiry, err = time.Parse(time.RFC3339, s); err != nil {
			writeError(w, http.StatusBadRequest, "ArgumentInvalid", 400004, "iothub-expiry: "+err.Error())
			return
		}
	}
	for _, k := range slices.Sorted(maps.Keys(r.Header)) {
		if name, ok := strings.CutPrefix(strings.ToLower(k), "iothub-app-"); ok && name != c2dPropsName {
			m.Properties = append(m.Properties, edgegw.Property{Key: name, Value: r.Header.Get(k)})
		}
	}
	if js := r.Header.Get("iothub-app-" + c2dPropsName); js != "" {
		var obj PropertyObject
		if err := json.Unmarshal([]byte(js), &obj); err != nil {
			writeError(w, http.StatusBadRequest, "ArgumentInvalid", 400004, "iothub-app-"+c2dPropsName+": "+err.Error())
			return
		}
		m.Properties = append(m.Properties, obj...)
	}
	id, err := h.SendC2D(r.PathValue("id"), m)
	if err != nil {
		writeRegistryError(w, err)
		return
	}
	writeJSON(w, http.StatusAccepted, map[string]string{"messageId": id})
}

// c2dPropsName is the header (after "iothub-app-") carrying C2D properties
// as a JSON object, names kept as written.
const c2dPropsName = "properties-json"
