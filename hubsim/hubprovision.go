package hubsim

import (
	"strings"
	"time"
)

// provision creates d, or updates its credentials if it exists. twin, if
// given, replaces the twin (a migration); a new identity starts with
// initial (or an empty twin). A connected device keeps its connection.
func (h *Hub) provision(d Device, twin, initial *twinState) error {
	if err := d.normalize(); err != nil {
		return err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.initLocked()
	id, ok := h.idents[d.key()]
	if ok {
		d.GenerationID = id.dev.GenerationID
		id.dev = d
	} else {
		id = newIdent(d)
		if initial != nil {
			id.twin = *initial
		}
		h.idents[d.key()] = id
	}
	if twin != nil {
		id.twin = *twin
		id.twin.Version++
	}
	h.dirtyLocked()
	h.signalLocked()
	return nil
}

// take removes a device and its modules and returns the device and its
// twin, closing their connections.
func (h *Hub) take(deviceID string) (Device, twinState, bool) {
	h.mu.Lock()
	id, ok := h.idents[deviceID]
	if !ok {
		h.mu.Unlock()
		return Device{}, twinState{}, false
	}
	dev, twin := id.dev, id.twin
	var kick []*conn
	for k, other := range h.idents {
		if k == deviceID || strings.HasPrefix(k, deviceID+"/") {
			if other.conn != nil {
				kick = append(kick, other.conn)
			}
			delete(h.idents, k)
		}
	}
	h.dirtyLocked()
	h.signalLocked()
	h.mu.Unlock()
	for _, c := range kick {
		c.kick()
	}
	dev.Updated = time.Now().UTC()
	return dev, twin, true
}

// addAlias makes the hub accept name (a DPS's assignedHub for it) as its
// host in usernames and SAS audiences.
func (h *Hub) addAlias(name string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, a := range h.aliases {
		if strings.EqualFold(a, name) {
			return
		}
	}
	h.aliases = append(h.aliases, name)
}

// HasDevice reports whether the registry holds deviceID.
func (h *Hub) HasDevice(deviceID string) bool {
	_, err := h.Device(deviceID, "")
	return err == nil
}
