package hubsim

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/edgegw/edgegw/iothub"
)

// RegistrationState is a device's registration record, as the service API
// and the device API's operation status show it.
type RegistrationState struct {
	RegistrationID string          `json:"registrationId"`
	Created        string          `json:"createdDateTimeUtc,omitempty"`
	AssignedHub    string          `json:"assignedHub,omitempty"`
	DeviceID       string          `json:"deviceId,omitempty"`
	Status         string          `json:"status"`              // assigned, failed, disabled
	Substatus      string          `json:"substatus,omitempty"` // initialAssignment, deviceDataMigrated, deviceDataReset
	LastUpdated    string          `json:"lastUpdatedDateTimeUtc,omitempty"`
	ETag           string          `json:"etag,omitempty"`
	ErrorCode      int             `json:"errorCode,omitempty"`
	ErrorMessage   string          `json:"errorMessage,omitempty"`
	Payload        json.RawMessage `json:"payload,omitempty"`
}

// registration is the record kept per registration id.
type registration struct {
	State      RegistrationState `json:"state"`
	Enrollment string            `json:"enrollment"` // "" = individual, else the group id
	Pinned     bool              `json:"pinned,omitempty"`
}

// attest finds the enrollment whose credentials this connection presents
// for regID: the individual enrollment if there is one, else the first
// group that attests it. It returns a copy, or the status (401) and the
// reason.
func (d *DPS) attest(c *dpsConn, regID string) (*Enrollment, int, string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var cands []*Enrollment
	if e, ok := d.enroll[strings.ToLower(regID)]; ok {
		cands = []*Enrollment{e}
	} else {
		for _, g := range d.groups {
			cands = append(cands, g)
		}
	}
	if c.hasPass {
		s, err := iothub.ParseSAS(c.password)
		if err != nil {
			return nil, 401, "Unauthorized: " + err.Error()
		}
		want := d.IDScope + "/registrations/" + regID
		if !strings.EqualFold(strings.TrimSuffix(s.Resource, "/"), want) {
			return nil, 401, fmt.Sprintf("Unauthorized: token audience %q is not %q", s.Resource, want)
		}
		if s.KeyName != "" && s.KeyName != "registration" {
			return nil, 401, "Unauthorized: skn must be registration or absent"
		}
		for _, e := range cands {
			if e.Attestation.Type != AttestationSymmetricKey {
				continue
			}
			p, sec := e.deviceKeys(regID)
			err := verifySAS(s, want, d.ClockSkew, p, sec)
			if err == nil {
				return cloneEnrollment(e), 0, ""
			}
			if errors.Is(err, iothub.ErrTokenExpired) {
				return nil, 401, "Unauthorized: " + err.Error()
			}
		}
		return nil, 401, "Unauthorized"
	}
	if len(c.chain) == 0 {
		return nil, 401, "Invalid certificate: no password and no client certificate"
	}
	leaf := c.chain[0]
	if now := time.Now(); now.Before(leaf.NotBefore) || now.After(leaf.NotAfter) {
		return nil, 401, "Invalid certificate: not valid now"
	}
	if leaf.Subject.CommonName != regID {
		return nil, 401, fmt.Sprintf("Invalid certificate: CN %q is not the registration id", leaf.Subject.CommonName)
	}
	for _, e := range cands {
		if e.Attestation.Type == AttestationX509 && e.matchesCert(c.chain) {
			return cloneEnrollment(e), 0, ""
		}
	}
	return nil, 401, "Invalid certificate."
}

// register attests, allocates and provisions, and returns the new
// operation, or the status and reason to refuse the request with.
func (d *DPS) register(c *dpsConn, regID string) (*operation, int, string) {
	e, status, msg := d.attest(c, regID)
	if e == nil {
		return nil, status, msg
	}
	var thumb string
	if !c.hasPass {
		thumb = Thumbprint(c.chain[0].Raw)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	// The payload goes only to custom allocation webhooks, which hubsim
	// does not emulate; DPS echoes none without one.
	res := d.assignLocked(e, regID, thumb)
	now := time.Now()
	op := &operation{id: newOperationID(), regKey: strings.ToLower(regID), readyAt: now.Add(d.AssignDelay),
		expires: now.Add(d.AssignDelay + operationTTL), result: res}
	d.sweepOpsLocked(now)
	d.ops[op.id] = op
	return op, 0, ""
}

// maxOperations bounds the operations kept for polling.
const maxOperations = 200000

// sweepOpsLocked drops expired operations once there are many.
func (d *DPS) sweepOpsLocked(now time.Time) {
	if len(d.ops) < maxOperations/2 {
		return
	}
	for id, op := range d.ops {
		if now.After(op.expires) {
			delete(d.ops, id)
		}
	}
	for id := range d.ops { // still full: drop arbitrary ones
		if len(d.ops) < maxOperations {
			break
		}
		delete(d.ops, id)
	}
}

// assignLocked runs allocation and provisioning for an attested device
// and records the result.
func (d *DPS) assignLocked(e *Enrollment, regID, thumb string) RegistrationState {
	key := strings.ToLower(regID)
	now := time.Now().UTC()
	prev := d.regs[key]
	r := &registration{State: RegistrationState{RegistrationID: regID, Created: timeString(now)}}
	if e.isGroup() {
		r.Enrollment = e.GroupID
	}
	if prev != nil {
		r.State.Created = prev.State.Created
		r.Pinned = prev.Pinned
	}
	r.State.LastUpdated = timeString(now)
	r.State.ETag = etagOf(now.UnixNano())
	d.regs[key] = r
	d.dirty = true
	if e.disabled() {
		r.State.Status = "disabled"
		return r.State
	}
	fail := func(code int, msg string) RegistrationState {
		r.State.Status, r.State.ErrorCode, r.State.ErrorMessage = "failed", code, msg
		return r.State
	}
	cands := d.candidatesLocked(e)
	if len(cands) == 0 {
		return fail(400208, "no linked IoT hub is a candidate for this enrollment")
	}
	rp := e.reprovision()
	var prevHub *LinkedHub
	if prev != nil && prev.State.AssignedHub != "" {
		prevHub, _ = d.hubByName(prev.State.AssignedHub)
	}
	var hub *LinkedHub
	if prevHub != nil && (prev.Pinned || !rp.UpdateHubAssignment) && containsHub(cands, prevHub) {
		hub = prevHub
	} else {
		hub = pickHub(cands, regID, d.policyOf(e))
		r.Pinned = false
	}
	dev := Device{ID: e.deviceID(regID)}
	if e.Attestation.Type == AttestationSymmetricKey {
		dev.Auth = AuthSAS
		dev.PrimaryKey, dev.SecondaryKey = e.deviceKeys(regID)
	} else {
		dev.Auth, dev.PrimaryThumbprint = AuthSelfSigned, thumb
	}
	substatus := "initialAssignment"
	var twin *twinState
	if prevHub != nil && prevHub != hub {
		old := prev.State.DeviceID
		_, t, ok := prevHub.Hub.take(old)
		if ok && rp.MigrateDeviceData {
			twin, substatus = &t, "deviceDataMigrated"
		} else {
			twin, substatus = initialTwin(e), "deviceDataReset"
		}
	} else if prev != nil && prev.State.Substatus != "" {
		substatus = prev.State.Substatus
	}
	if err := hub.Hub.provision(dev, twin, initialTwin(e)); err != nil {
		return fail(500000, "creating the device in "+hub.Name+": "+err.Error())
	}
	r.State.Status, r.State.AssignedHub, r.State.DeviceID, r.State.Substatus = "assigned", hub.Name, dev.ID, substatus
	d.stats.assigned++
	return r.State
}

func (d *DPS) policyOf(e *Enrollment) string {
	if e.AllocationPolicy != "" {
		return e.AllocationPolicy
	}
	return d.AllocationPolicy
}

// candidatesLocked returns the hubs e may be assigned to: those it lists,
// else every linked hub not excluded from allocation.
func (d *DPS) candidatesLocked(e *Enrollment) []*LinkedHub {
	var out []*LinkedHub
	if len(e.IoTHubs) > 0 {
		for _, n := range e.IoTHubs {
			if lh, ok := d.hubByName(n); ok && !containsHub(out, lh) {
				out = append(out, lh)
			}
		}
		return out
	}
	for i := range d.Hubs {
		if !d.Hubs[i].Exclude {
			out = append(out, &d.Hubs[i])
		}
	}
	if d.policyOf(e) == AllocationStatic && len(out) > 1 {
		return nil // static needs the enrollment to name its hub
	}
	return out
}

func containsHub(hubs []*LinkedHub, h *LinkedHub) bool {
	for _, x := range hubs {
		if x == h {
			return true
		}
	}
	return false
}

// pickHub chooses among cands for regID: static takes the only one;
// hashed (and geoLatency) is weighted rendezvous hashing, so a device keeps
// its hub as long as the candidates do, and each hub gets a share of
// devices proportional to its weight.
func pickHub(cands []*LinkedHub, regID, policy string) *LinkedHub {
	if policy == AllocationStatic || len(cands) == 1 {
		return cands[0]
	}
	var best *LinkedHub
	bestScore := math.Inf(-1)
	for _, h := range cands {
		sum := sha256.Sum256([]byte(strings.ToLower(regID) + "\n" + strings.ToLower(h.Name)))
		u := (float64(binary.BigEndian.Uint64(sum[:8])>>11) + 0.5) / (1 << 53) // in (0,1)
		score := float64(h.Weight) / -math.Log(u)
		if score > bestScore {
			best, bestScore = h, score
		}
	}
	return best
}

// initialTwin returns the twin a new device of e starts with.
func initialTwin(e *Enrollment) *twinState {
	t := newTwinState()
	if it := e.InitialTwin; it != nil {
		if it.Tags != nil {
			t.Tags = cloneMap(it.Tags)
		}
		if it.Properties.Desired != nil {
			t.Desired = cloneMap(it.Properties.Desired)
			t.DesiredVersion++
			t.DesiredUpdated = time.Now().UTC()
		}
	}
	return &t
}

// Registration returns the registration record of regID.
func (d *DPS) Registration(regID string) (RegistrationState, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	r, ok := d.regs[strings.ToLower(regID)]
	if !ok {
		return RegistrationState{}, false
	}
	return r.State, true
}

// Registrations returns every registration record.
func (d *DPS) Registrations() []RegistrationState {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]RegistrationState, 0, len(d.regs))
	for _, r := range d.regs {
		out = append(out, r.State)
	}
	return out
}

// DeleteRegistration forgets the registration record of regID (the device
// stays in its hub, as with DPS). etag "" or "*" matches any.
func (d *DPS) DeleteRegistration(regID, etag string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	key := strings.ToLower(regID)
	r, ok := d.regs[key]
	if !ok {
		return fmt.Errorf("%w: registration %s", ErrEnrollmentNotFound, regID)
	}
	if etag != "" && etag != "*" && etag != r.State.ETag {
		return ErrETagMismatch
	}
	delete(d.regs, key)
	d.dirty = true
	return nil
}

// Move moves an assigned device to the linked hub named hubName, as an
// operator rebalancing a fleet does: its identity and twin leave the old
// hub (its connection there is closed, and connecting there again is
// refused) and are created in the new one, and its registration names the
// new hub, so registering again returns it (substatus deviceDataMigrated).
func (d *DPS) Move(regID, hubName string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	r, ok := d.regs[strings.ToLower(regID)]
	if !ok || r.State.Status != "assigned" {
		return fmt.Errorf("%w: %s is not assigned", ErrDeviceNotFound, regID)
	}
	to, ok := d.hubByName(hubName)
	if !ok {
		return fmt.Errorf("hubsim dps: no linked hub named %q", hubName)
	}
	from, ok := d.hubByName(r.State.AssignedHub)
	if !ok {
		return fmt.Errorf("hubsim dps: hub %q is no longer linked", r.State.AssignedHub)
	}
	if from != to {
		dev, twin, ok := from.Hub.take(r.State.DeviceID)
		if !ok {
			return fmt.Errorf("%w: %s in %s", ErrDeviceNotFound, r.State.DeviceID, from.Name)
		}
		if err := to.Hub.provision(dev, &twin, nil); err != nil {
			_ = from.Hub.provision(dev, &twin, nil)
			return err
		}
	}
	now := time.Now().UTC()
	r.State.AssignedHub, r.State.Substatus, r.Pinned = to.Name, "deviceDataMigrated", true
	r.State.LastUpdated, r.State.ETag = timeString(now), etagOf(now.UnixNano())
	d.dirty = true
	return nil
}

// ThrottleNext makes the next n device requests (register or poll) get
// 429 with retry-after.
func (d *DPS) ThrottleNext(n int) {
	d.mu.Lock()
	d.throttle = n
	d.mu.Unlock()
}

// HubNames returns the names of the linked hubs, in order.
func (d *DPS) HubNames() []string {
	out := make([]string, len(d.Hubs))
	for i, h := range d.Hubs {
		out[i] = h.Name
	}
	return out
}

// HubFor returns the linked hub named name (an assignedHub).
func (d *DPS) HubFor(name string) (*Hub, bool) {
	lh, ok := d.hubByName(name)
	if !ok {
		return nil, false
	}
	return lh.Hub, true
}
