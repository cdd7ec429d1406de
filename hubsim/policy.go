package hubsim

import (
	"net"
	"strings"
)

// Right is a shared access policy permission.
type Right string

// Policy rights, as IoT Hub names them.
const (
	RightRegistryRead   Right = "RegistryRead"
	RightRegistryWrite  Right = "RegistryWrite"
	RightServiceConnect Right = "ServiceConnect"
	RightDeviceConnect  Right = "DeviceConnect"
)

// Policy is a hub-level shared access policy.
type Policy struct {
	Name         string  `json:"keyName"`
	PrimaryKey   string  `json:"primaryKey"`
	SecondaryKey string  `json:"secondaryKey"`
	Rights       []Right `json:"rights"`
}

func (p *Policy) has(r Right) bool {
	for _, x := range p.Rights {
		if x == r {
			return true
		}
	}
	return false
}

// defaultPolicies returns IoT Hub's default policies with fresh keys.
func defaultPolicies() map[string]*Policy {
	all := []Right{RightRegistryRead, RightRegistryWrite, RightServiceConnect, RightDeviceConnect}
	m := map[string]*Policy{}
	for name, rights := range map[string][]Right{
		"iothubowner":       all,
		"service":           {RightServiceConnect},
		"device":            {RightDeviceConnect},
		"registryRead":      {RightRegistryRead},
		"registryReadWrite": {RightRegistryRead, RightRegistryWrite},
	} {
		m[name] = &Policy{Name: name, PrimaryKey: NewKey(), SecondaryKey: NewKey(), Rights: rights}
	}
	return m
}

// policy returns a copy of the named policy; names are case-insensitive.
func (h *Hub) policy(name string) (Policy, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.initLocked()
	for n, p := range h.policies {
		if strings.EqualFold(n, name) {
			return *p, true
		}
	}
	return Policy{}, false
}

// Policy returns the named shared access policy (iothubowner, service,
// device, registryRead, registryReadWrite).
func (h *Hub) Policy(name string) (Policy, bool) { return h.policy(name) }

// ServiceConnectionString returns the iothubowner connection string. The
// HostName is the hub name without a port: azure-iothub's REST client
// cannot take one (see the package documentation for ways round that).
func (h *Hub) ServiceConnectionString() string {
	p, _ := h.policy("iothubowner")
	return "HostName=" + h.HostName + ";SharedAccessKeyName=" + p.Name + ";SharedAccessKey=" + p.PrimaryKey
}

// DeviceConnectionString returns a connection string for a device (module
// "") or module. With a SAS key: HostName is the hub name and
// GatewayHostName the MQTT host:port, which the Node device SDK honours for
// SharedAccessKey strings. With X.509 ("x509=true"; the client supplies the
// certificate): HostName is the MQTT host:port itself, because the Node SDK
// ignores GatewayHostName for x509 strings; the hub accepts its name with
// a port in usernames.
func (h *Hub) DeviceConnectionString(deviceID, moduleID string) (string, error) {
	d, err := h.Device(deviceID, moduleID)
	if err != nil {
		return "", err
	}
	addr := h.MQTTAddress()
	host := h.HostName
	if d.Auth != AuthSAS && addr != "" {
		host = h.gatewayHost(addr)
	}
	s := "HostName=" + host + ";DeviceId=" + d.ID
	if d.ModuleID != "" {
		s += ";ModuleId=" + d.ModuleID
	}
	if d.Auth != AuthSAS {
		return s + ";x509=true", nil
	}
	s += ";SharedAccessKey=" + d.PrimaryKey
	if addr != "" {
		s += ";GatewayHostName=" + h.gatewayHost(addr)
	}
	return s, nil
}

// gatewayHost returns host:port with a name covered by the certificate.
func (h *Hub) gatewayHost(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && (ip.IsLoopback() || ip.IsUnspecified()) {
		host = "localhost"
	}
	return net.JoinHostPort(host, port)
}
