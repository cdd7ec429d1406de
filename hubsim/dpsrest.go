package hubsim

import (
	"errors"
	"net/http"
	"strings"

	"github.com/edgegw/edgegw/iothub"
)

// httpHandler serves the provisioning service REST subset (any
// api-version) and hubsim's own /edgegw/ endpoints, all behind the
// provisioningserviceowner SAS, and the device API over WebSocket at
// /$iothub/websocket (authenticated per request, as over TLS).
func (d *DPS) httpHandler() http.Handler {
	mux := http.NewServeMux()
	for _, r := range []struct {
		pattern string
		fn      http.HandlerFunc
	}{
		{"PUT /enrollments/{id}", d.restPutEnrollment(false)},
		{"GET /enrollments/{id}", d.restGetEnrollment(false)},
		{"DELETE /enrollments/{id}", d.restDeleteEnrollment(false)},
		{"POST /enrollments/query", d.restQueryEnrollments(false)},
		{"PUT /enrollmentGroups/{id}", d.restPutEnrollment(true)},
		{"GET /enrollmentGroups/{id}", d.restGetEnrollment(true)},
		{"DELETE /enrollmentGroups/{id}", d.restDeleteEnrollment(true)},
		{"POST /enrollmentGroups/query", d.restQueryEnrollments(true)},
		{"GET /registrations/{id}", d.restGetRegistration},
		{"DELETE /registrations/{id}", d.restDeleteRegistration},
		{"POST /registrations/{group}/query", d.restQueryRegistrations},
		{"GET /edgegw/hubs", d.restHubs},
		{"POST /edgegw/registrations/{id}/move", d.restMove},
	} {
		mux.Handle(r.pattern, d.serviceAuth(r.fn))
	}
	mux.HandleFunc("GET "+wsPath, d.serveWebsocket)
	return mux
}

// serviceAuth requires "Authorization: SharedAccessSignature sr={host}&...
// &skn=provisioningserviceowner" signed with that policy's key.
func (d *DPS) serviceAuth(next http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := d.checkServiceToken(r.Header.Get("Authorization")); err != nil {
			writeDPSError(w, http.StatusUnauthorized, 401002, "Unauthorized: "+err.Error())
			return
		}
		next(w, r)
	})
}

func (d *DPS) checkServiceToken(token string) error {
	s, err := iothub.ParseSAS(token)
	if err != nil {
		return err
	}
	p := d.Policy()
	if !strings.EqualFold(s.KeyName, p.Name) {
		return errUnknownPolicy
	}
	host, rest, _ := strings.Cut(s.Resource, "/")
	name, _, _ := strings.Cut(host, ":")
	if !strings.EqualFold(name, d.HostName) && !strings.EqualFold(name, "localhost") && name != "127.0.0.1" {
		return iothub.ErrBadAudience
	}
	aud := s
	aud.Resource = d.HostName
	if rest != "" {
		aud.Resource += "/" + rest
	}
	return verifySAS(aud, d.HostName, d.ClockSkew, p.PrimaryKey, p.SecondaryKey)
}

// writeDPSError writes DPS's flat error body.
func writeDPSError(w http.ResponseWriter, status, code int, msg string) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(dpsError(code, msg))
}

func writeEnrollmentError(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, ErrEnrollmentNotFound), errors.Is(err, ErrDeviceNotFound):
		writeDPSError(w, http.StatusNotFound, 404201, err.Error())
	case errors.Is(err, ErrETagMismatch):
		writeDPSError(w, http.StatusPreconditionFailed, 412002, err.Error())
	default:
		writeDPSError(w, http.StatusBadRequest, 400004, err.Error())
	}
}

func (d *DPS) restPutEnrollment(group bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var e Enrollment
		if err := decodeBody(r, &e); err != nil {
			writeDPSError(w, http.StatusBadRequest, 400004, "body: "+err.Error())
			return
		}
		id := r.PathValue("id")
		field := &e.RegistrationID
		if group {
			field = &e.GroupID
		}
		if *field != "" && *field != id {
			writeDPSError(w, http.StatusBadRequest, 400004, "the id in the body is not the one in the path")
			return
		}
		*field = id
		if group && e.RegistrationID != "" || !group && e.GroupID != "" {
			writeDPSError(w, http.StatusBadRequest, 400004, "an individual enrollment has no enrollmentGroupId, a group no registrationId")
			return
		}
		out, err := d.PutEnrollment(e, strings.Trim(r.Header.Get("If-Match"), `"`))
		if err != nil {
			writeEnrollmentError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, out)
	}
}

func (d *DPS) restGetEnrollment(group bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		e, err := d.getEnrollment(group, r.PathValue("id"))
		if err != nil {
			writeEnrollmentError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, e)
	}
}

func (d *DPS) restDeleteEnrollment(group bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := d.DeleteEnrollment(group, r.PathValue("id"), strings.Trim(r.Header.Get("If-Match"), `"`)); err != nil {
			writeEnrollmentError(w, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}
}

// restQueryEnrollments answers every query with all enrollments (the
// query text is not interpreted) in one page.
func (d *DPS) restQueryEnrollments(group bool) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, d.Enrollments(group))
	}
}

func (d *DPS) restGetRegistration(w http.ResponseWriter, r *http.Request) {
	st, ok := d.Registration(r.PathValue("id"))
	if !ok {
		writeDPSError(w, http.StatusNotFound, 404202, "registration "+r.PathValue("id")+" not found")
		return
	}
	writeJSON(w, http.StatusOK, st)
}

func (d *DPS) restDeleteRegistration(w http.ResponseWriter, r *http.Request) {
	if err := d.DeleteRegistration(r.PathValue("id"), strings.Trim(r.Header.Get("If-Match"), `"`)); err != nil {
		writeEnrollmentError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// restQueryRegistrations lists the registrations of an enrollment group.
func (d *DPS) restQueryRegistrations(w http.ResponseWriter, r *http.Request) {
	group := r.PathValue("group")
	d.mu.Lock()
	out := []RegistrationState{}
	for _, reg := range d.regs {
		if strings.EqualFold(reg.Enrollment, group) {
			out = append(out, reg.State)
		}
	}
	d.mu.Unlock()
	writeJSON(w, http.StatusOK, out)
}

// HubInfo describes a linked hub for GET /edgegw/hubs.
type HubInfo struct {
	Name     string `json:"name"`     // the assignedHub devices are told
	HostName string `json:"hostName"` // the hub's own name
	MQTT     string `json:"mqtt"`
	HTTPS    string `json:"https"`
	Weight   int    `json:"weight"`
	Exclude  bool   `json:"exclude,omitempty"`
	Devices  int    `json:"devices"`
}

// HubInfos describes the linked hubs.
func (d *DPS) HubInfos() []HubInfo {
	out := make([]HubInfo, 0, len(d.Hubs))
	for _, lh := range d.Hubs {
		out = append(out, HubInfo{Name: lh.Name, HostName: lh.Hub.HostName, MQTT: lh.Hub.MQTTAddress(),
			HTTPS: lh.Hub.HTTPAddress(), Weight: lh.Weight, Exclude: lh.Exclude, Devices: len(lh.Hub.Devices())})
	}
	return out
}

func (d *DPS) restHubs(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, d.HubInfos())
}

// restMove handles POST /edgegw/registrations/{id}/move {"hub":"name"}.
func (d *DPS) restMove(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Hub string `json:"hub"`
	}
	if err := decodeBody(r, &in); err != nil || in.Hub == "" {
		writeDPSError(w, http.StatusBadRequest, 400004, `body must be {"hub":"<linked hub name>"}`)
		return
	}
	if err := d.Move(r.PathValue("id"), in.Hub); err != nil {
		writeEnrollmentError(w, err)
		return
	}
	st, _ := d.Registration(r.PathValue("id"))
	writeJSON(w, http.StatusOK, st)
}
