package hubsim

import (
	"errors"
	"fmt"
	"time"
)

// ErrBadRequest is wrapped by errors about malformed service requests.
var ErrBadRequest = errors.New("bad request")

// Twin is the service view of a device or module twin, in IoT Hub's JSON
// shape. Properties.Desired and Properties.Reported carry "$version" and
// "$metadata" besides the properties.
type Twin struct {
	DeviceID                  string         `json:"deviceId"`
	ModuleID                  string         `json:"moduleId,omitempty"`
	ETag                      string         `json:"etag"`
	DeviceETag                string         `json:"deviceEtag"`
	Version                   int64          `json:"version"`
	Status                    string         `json:"status"`
	StatusUpdateTime          string         `json:"statusUpdateTime"`
	ConnectionState           string         `json:"connectionState"`
	LastActivityTime          string         `json:"lastActivityTime"`
	CloudToDeviceMessageCount int            `json:"cloudToDeviceMessageCount"`
	AuthenticationType        string         `json:"authenticationType"`
	X509Thumbprint            thumbprints    `json:"x509Thumbprint"`
	ModelID                   string         `json:"modelId"`
	Capabilities              map[string]any `json:"capabilities,omitempty"`
	Tags                      map[string]any `json:"tags"`
	Properties                TwinProperties `json:"properties"`
}

// TwinProperties holds the desired and reported sections.
type TwinProperties struct {
	Desired  map[string]any `json:"desired"`
	Reported map[string]any `json:"reported"`
}

type thumbprints struct {
	Primary   *string `json:"primaryThumbprint"`
	Secondary *string `json:"secondaryThumbprint"`
}

func (t Twin) desiredVersion() int64 {
	v, _ := t.Properties.Desired["$version"].(int64)
	return v
}

// Twin returns the twin of a device (module "") or module.
func (h *Hub) Twin(deviceID, moduleID string) (Twin, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	id, ok := h.idents[identityKey(deviceID, moduleID)]
	if !ok {
		return Twin{}, fmt.Errorf("%w: %s", ErrDeviceNotFound, identityKey(deviceID, moduleID))
	}
	return h.twinViewLocked(id), nil
}

func (h *Hub) twinViewLocked(id *ident) Twin {
	d := id.dev
	t := Twin{
		DeviceID:                  d.ID,
		ModuleID:                  d.ModuleID,
		ETag:                      etagOf(id.twin.Version),
		DeviceETag:                d.ETag,
		Version:                   id.twin.Version,
		Status:                    statusOf(d),
		StatusUpdateTime:          timeString(d.Updated),
		ConnectionState:           "Disconnected",
		LastActivityTime:          timeString(id.lastActivity),
		CloudToDeviceMessageCount: len(id.c2d),
		AuthenticationType:        string(d.Auth),
		Tags:                      cloneMap(id.twin.Tags),
		Properties: TwinProperties{
			Desired:  section(id.twin.Desired, id.twin.DesiredVersion, id.twin.DesiredUpdated),
			Reported: section(id.twin.Reported, id.twin.ReportedVersion, id.twin.ReportedUpdated),
		},
	}
	if d.ModuleID == "" {
		t.Capabilities = map[string]any{"iotEdge": false}
	}
	if id.conn != nil {
		t.ConnectionState = "Connected"
		t.ModelID = id.conn.user.ModelID
	}
	if d.Auth == AuthSelfSigned {
		p, s := d.PrimaryThumbprint, d.SecondaryThumbprint
		t.X509Thumbprint = thumbprints{&p, &s}
	}
	return t
}

func section(m map[string]any, v int64, updated time.Time) map[string]any {
	out := withVersion(cloneMap(m), v)
	out["$metadata"] = map[string]any{"$lastUpdated": timeString(updated)}
	return out
}

func statusOf(d Device) string {
	if d.Disabled {
		return "disabled"
	}
	return "enabled"
}

// timeString renders times as IoT Hub does; the zero time is
// "0001-01-01T00:00:00Z".
func timeString(t time.Time) string {
	return t.UTC().Format("2006-01-02T15:04:05.0000000Z")
}
