package ops

import (
	"fmt"
	"time"
)

// Readiness kinds.
const (
	NotStarted         = "starting"
	IdentityStalled    = "identity_stalled"
	DiskFull           = "disk_full"
	AdapterUnreachable = "adapter_unreachable"
)

// Evaluate says whether data is moving, from a snapshot taken at st.Time:
//
//   - an identity with messages waiting has stalled when the hub has
//     acknowledged nothing of it for longer than stallAfter, counted from
//     the latest of its last acknowledgement, its oldest waiting message
//     and the gateway's start (so an idle identity, or a backlog that is
//     draining, is not stalled);
//   - the buffer refuses appends (its filesystem is full);
//   - an adapter reaches none of its devices: every Modbus device of a bus
//     is down or disconnected, a serial port is not open after failures,
//     an OPC UA adapter has no session with its server after an attempt.
//
// LAN and simulator adapters never make it unready: their devices come to
// the gateway.
func Evaluate(st *Status, stallAfter time.Duration) Readiness {
	var rs []Reason
	for _, id := range st.Identities {
		if id.Queued == 0 {
			continue
		}
		since := st.StartTime
		if id.LastAck != nil && id.LastAck.After(since) {
			since = *id.LastAck
		}
		if id.OldestQueued != nil && id.OldestQueued.After(since) {
			since = *id.OldestQueued
		}
		if quiet := st.Time.Sub(since); quiet > stallAfter {
			detail := fmt.Sprintf("%d messages waiting; no acknowledgement from the hub for %s", id.Queued, quiet.Round(time.Second))
			if !id.Connected {
				detail += "; not connected"
				if id.LastError != nil && id.LastError.Cleared == nil {
					detail += ": " + id.LastError.Message
				}
			}
			rs = append(rs, Reason{Kind: IdentityStalled, Subject: id.ID, Detail: detail})
		}
	}
	if st.Buffer.DiskFull {
		detail := "the buffer refuses appends: its filesystem is below the free-space reserve"
		if st.Buffer.DiskFreeBytes != nil {
			detail += fmt.Sprintf(" (%d bytes free)", *st.Buffer.DiskFreeBytes)
		}
		rs = append(rs, Reason{Kind: DiskFull, Detail: detail})
	}
	for _, a := range st.Adapters {
		if d := unreachable(&a); d != "" {
			rs = append(rs, Reason{Kind: AdapterUnreachable, Subject: a.Name, Detail: d})
		}
	}
	return Readiness{Ready: len(rs) == 0, Reasons: rs}
}

// unreachable says why adapter a reaches none of its devices, or "".
func unreachable(a *Adapter) string {
	switch {
	case a.Modbus != nil:
		m := a.Modbus
		if len(m.Devices) == 0 {
			return ""
		}
		for _, d := range m.Devices {
			if d.State != "down" && d.State != "disconnected" {
				return ""
			}
		}
		if !m.Connected {
			return fmt.Sprintf("bus %s not connected; none of %d devices reachable", m.Bus, len(m.Devices))
		}
		return fmt.Sprintf("none of %d devices on %s answers", len(m.Devices), m.Bus)
	case a.OPCUA != nil:
		u := a.OPCUA
		if u.Connected || u.ConnectErrors+u.Disconnects == 0 || len(u.Devices) == 0 {
			return ""
		}
		detail := fmt.Sprintf("not connected to %s; none of %d devices reachable", u.Endpoint, len(u.Devices))
		if u.LastError != nil && u.LastError.Cleared == nil {
			detail += ": " + u.LastError.Message
		}
		return detail
	case a.Serial != nil:
		if !a.Serial.Open && a.Serial.OpenFailures > 0 {
			return "serial port not open"
		}
	}
	return ""
}
