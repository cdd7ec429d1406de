package hubsim

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// PutEnrollment creates or replaces an individual enrollment (RegistrationID
// set) or an enrollment group (GroupID set) and returns it as stored:
// missing symmetric keys are generated (64 bytes, as DPS does), certificate
// info is filled in. etag "" or "*" matches anything; otherwise it must be
// the stored enrollment's. Changes apply to later registrations.
func (d *DPS) PutEnrollment(e Enrollment, etag string) (Enrollment, error) {
	e = *cloneEnrollment(&e)
	d.mu.Lock()
	defer d.mu.Unlock()
	d.initLocked()
	m := d.enroll
	if e.isGroup() {
		m = d.groups
	}
	key := strings.ToLower(e.id())
	prev := m[key]
	if etag != "" && etag != "*" && (prev == nil || prev.ETag != etag) {
		if prev == nil {
			return Enrollment{}, fmt.Errorf("%w: %s", ErrEnrollmentNotFound, e.id())
		}
		return Enrollment{}, ErrETagMismatch
	}
	if err := e.normalize(prev); err != nil {
		return Enrollment{}, err
	}
	if d.started {
		for _, n := range e.IoTHubs {
			if _, ok := d.hubByName(n); !ok {
				return Enrollment{}, fmt.Errorf("%w: %s: iotHubs: %q is not a linked hub (linked: %s)", ErrBadEnrollment, e.id(), n, strings.Join(d.HubNames(), ", "))
			}
		}
	}
	m[key] = &e
	d.dirty = true
	return *cloneEnrollment(&e), nil
}

// Enrollment returns the individual enrollment of registrationID.
func (d *DPS) Enrollment(registrationID string) (Enrollment, error) {
	return d.getEnrollment(false, registrationID)
}

// EnrollmentGroup returns the enrollment group groupID.
func (d *DPS) EnrollmentGroup(groupID string) (Enrollment, error) {
	return d.getEnrollment(true, groupID)
}

func (d *DPS) getEnrollment(group bool, id string) (Enrollment, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.initLocked()
	m := d.enroll
	if group {
		m = d.groups
	}
	e, ok := m[strings.ToLower(id)]
	if !ok {
		return Enrollment{}, fmt.Errorf("%w: %s", ErrEnrollmentNotFound, id)
	}
	return *cloneEnrollment(e), nil
}

// Enrollments lists individual enrollments (groups=false) or groups, by id.
func (d *DPS) Enrollments(groups bool) []Enrollment {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.initLocked()
	m := d.enroll
	if groups {
		m = d.groups
	}
	out := make([]Enrollment, 0, len(m))
	for _, e := range m {
		out = append(out, *cloneEnrollment(e))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].id() < out[j].id() })
	return out
}

// DeleteEnrollment deletes an individual enrollment (group=false) or a
// group. Devices stay registered in their hubs; they can no longer
// register again. etag as in PutEnrollment.
func (d *DPS) DeleteEnrollment(group bool, id, etag string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.initLocked()
	m := d.enroll
	if group {
		m = d.groups
	}
	key := strings.ToLower(id)
	e, ok := m[key]
	if !ok {
		return fmt.Errorf("%w: %s", ErrEnrollmentNotFound, id)
	}
	if etag != "" && etag != "*" && etag != e.ETag {
		return ErrETagMismatch
	}
	delete(m, key)
	d.dirty = true
	return nil
}

// cloneEnrollment deep-copies e (it holds pointers and maps).
func cloneEnrollment(e *Enrollment) *Enrollment {
	b, err := json.Marshal(e)
	if err != nil {
		panic(fmt.Sprintf("hubsim: enrollment does not encode: %v", err))
	}
	var c Enrollment
	if err := json.Unmarshal(b, &c); err != nil {
		panic(fmt.Sprintf("hubsim: enrollment does not decode: %v", err))
	}
	return &c
}

// dpsStateFile holds enrollments, registrations and the service policy.
const dpsStateFile = "dps.json"

type savedDPS struct {
	Version       int                      `json:"version"`
	Owner         Policy                   `json:"owner"`
	Enrollments   []*Enrollment            `json:"enrollments"`
	Groups        []*Enrollment            `json:"groups"`
	Registrations map[string]*registration `json:"registrations"`
}

func (d *DPS) load() error {
	b, err := os.ReadFile(filepath.Join(d.DataDir, dpsStateFile))
	if errors.Is(err, os.ErrNotExist) {
		d.mu.Lock()
		d.dirty = true
		d.mu.Unlock()
		return nil
	}
	if err != nil {
		return err
	}
	var st savedDPS
	if err := json.Unmarshal(b, &st); err != nil {
		return fmt.Errorf("%s: %w", dpsStateFile, err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if st.Owner.PrimaryKey != "" {
		d.owner = st.Owner
	}
	for _, e := range st.Enrollments {
		d.enroll[strings.ToLower(e.id())] = e
	}
	for _, e := range st.Groups {
		d.groups[strings.ToLower(e.id())] = e
	}
	for k, r := range st.Registrations {
		d.regs[k] = r
	}
	return nil
}

func (d *DPS) save() error {
	d.mu.Lock()
	if !d.dirty {
		d.mu.Unlock()
		return nil
	}
	st := savedDPS{Version: 1, Owner: d.owner, Registrations: d.regs}
	for _, e := range d.enroll {
		st.Enrollments = append(st.Enrollments, e)
	}
	for _, e := range d.groups {
		st.Groups = append(st.Groups, e)
	}
	b, err := json.MarshalIndent(st, "", "  ")
	d.dirty = false
	d.mu.Unlock()
	if err != nil {
		return fmt.Errorf("hubsim dps: encode state: %w", err)
	}
	if err := writeFileAtomic(filepath.Join(d.DataDir, dpsStateFile), b, 0o600); err != nil {
		d.mu.Lock()
		d.dirty = true
		d.mu.Unlock()
		return fmt.Errorf("hubsim dps: save state: %w", err)
	}
	return nil
}

func (d *DPS) persistLoop() {
	if d.DataDir == "" {
		return
	}
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-d.ctx.Done():
			return
		case <-t.C:
			if err := d.save(); err != nil {
				d.log.Warn("hubsim dps state not saved", "err", err)
			}
		}
	}
}
