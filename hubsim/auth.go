package hubsim

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/edgegw/edgegw/iothub"
)

// errRefused is returned from OnConnect after hubsim wrote its own CONNACK.
var errRefused = errors.New("connection refused")

// authenticate checks a CONNECT the way IoT Hub does and returns the new
// connection, or the CONNACK code to refuse it with and the reason.
func (h *Hub) authenticate(cl *mqtt.Client, pk packets.Packet) (*conn, packets.Code, error) {
	if pk.ProtocolVersion != 4 {
		return nil, packets.ErrUnsupportedProtocolVersion, fmt.Errorf("protocol version %d, want 4 (MQTT 3.1.1)", pk.ProtocolVersion)
	}
	u, err := iothub.ParseUsername(string(pk.Connect.Username))
	if err != nil {
		return nil, packets.ErrNotAuthorized, err
	}
	if pk.Connect.ClientIdentifier != u.ClientID() {
		return nil, packets.ErrNotAuthorized, fmt.Errorf("client id %q does not match username identity %q", pk.Connect.ClientIdentifier, u.ClientID())
	}
	key := u.ClientID()
	h.mu.Lock()
	id, ok := h.idents[key]
	var dev Device
	if ok {
		dev = id.dev
	}
	h.mu.Unlock()
	if !ok {
		return nil, packets.ErrNotAuthorized, fmt.Errorf("%w: %s", ErrDeviceNotFound, key)
	}
	if dev.Disabled {
		return nil, packets.ErrNotAuthorized, errors.New("device disabled")
	}
	c := &conn{h: h, cl: cl, key: key, deviceID: u.DeviceID, moduleID: u.ModuleID, user: u}
	var expires time.Time
	if pk.Connect.PasswordFlag {
		c.auth = "sas"
		expires, err = h.verifyDeviceSAS(dev, string(pk.Connect.Password))
	} else {
		c.auth = "x509"
		err = h.verifyDeviceCert(dev, cl)
	}
	if err != nil {
		return nil, packets.ErrNotAuthorized, err
	}
	if pk.Connect.WillFlag {
		if _, ok := c.eventsBag(pk.Connect.WillTopic); !ok {
			return nil, packets.ErrNotAuthorized, fmt.Errorf("will topic %q is not this identity's events topic", pk.Connect.WillTopic)
		}
		c.will = &mqtt.Will{TopicName: pk.Connect.WillTopic, Payload: append([]byte(nil), pk.Connect.WillPayload...), Retain: pk.Connect.WillRetain}
	}
	if !expires.IsZero() {
		c.expiry = time.AfterFunc(time.Until(expires.Add(h.ClockSkew)), func() {
			h.log.Info("sas token expired, closing connection", "device", key)
			c.kick()
		})
	}
	return c, packets.CodeSuccess, nil
}

// verifyDeviceSAS verifies a device or module token, signed with the
// identity's keys or with a policy that has DeviceConnect, and returns its
// expiry.
func (h *Hub) verifyDeviceSAS(dev Device, token string) (time.Time, error) {
	s, err := iothub.ParseSAS(token)
	if err != nil {
		return time.Time{}, err
	}
	keys := []string{dev.PrimaryKey, dev.SecondaryKey}
	if s.KeyName != "" {
		p, ok := h.policy(s.KeyName)
		if !ok || !p.has(RightDeviceConnect) {
			return time.Time{}, fmt.Errorf("policy %q does not exist or lacks DeviceConnect", s.KeyName)
		}
		keys = []string{p.PrimaryKey, p.SecondaryKey}
	} else if dev.Auth != AuthSAS {
		return time.Time{}, fmt.Errorf("device uses %s authentication, not sas", dev.Auth)
	}
	// The audience host may be the hub name with a port (HostName=host:port).
	host, rest, _ := strings.Cut(s.Resource, "/")
	if !h.isHubHost(host) {
		return time.Time{}, fmt.Errorf("%w: host %q is not %q", iothub.ErrBadAudience, host, h.HostName)
	}
	aud := s
	aud.Resource = h.HostName + "/" + rest
	if err := verifySAS(aud, iothub.ResourceURI(h.HostName, dev.ID, dev.ModuleID), h.ClockSkew, keys...); err != nil {
		return time.Time{}, err
	}
	return s.Expiry, nil
}

// isHubHost reports whether host names this hub: HostName, HostName:port,
// or an alias a DPS gave it, case-insensitively.
func (h *Hub) isHubHost(host string) bool {
	host = strings.ToLower(host)
	name := strings.ToLower(h.HostName)
	if host == name || strings.HasPrefix(host, name+":") {
		return true
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, a := range h.aliases {
		if strings.EqualFold(a, host) {
			return true
		}
	}
	return false
}

// verifyDeviceCert checks the TLS client certificate: by SHA-1 thumbprint
// for AuthSelfSigned, by chain and CommonName for AuthCA.
func (h *Hub) verifyDeviceCert(dev Device, cl *mqtt.Client) error {
	var certs []*x509.Certificate
	if st, ok := cl.Net.Conn.(interface{ ConnectionState() tls.ConnectionState }); ok {
		certs = st.ConnectionState().PeerCertificates
	}
	if len(certs) == 0 {
		return errors.New("no password and no client certificate")
	}
	leaf := certs[0]
	now := time.Now()
	if now.Before(leaf.NotBefore) || now.After(leaf.NotAfter) {
		return errors.New("client certificate is not valid now")
	}
	switch dev.Auth {
	case AuthSelfSigned:
		tp := Thumbprint(leaf.Raw)
		if tp == dev.PrimaryThumbprint || tp == dev.SecondaryThumbprint {
			return nil
		}
		return fmt.Errorf("client certificate thumbprint %s is not registered", tp)
	case AuthCA:
		roots := h.certs.pool
		inter := x509.NewCertPool()
		for _, c := range certs[1:] {
			inter.AddCert(c)
		}
		opts := x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
		_, err := leaf.Verify(opts)
		if err != nil && h.DeviceCAs != nil {
			opts.Roots = h.DeviceCAs
			_, err = leaf.Verify(opts)
		}
		if err != nil {
			return fmt.Errorf("client certificate: %w", err)
		}
		if leaf.Subject.CommonName != dev.ID && leaf.Subject.CommonName != dev.key() {
			return fmt.Errorf("client certificate CN %q is not %q", leaf.Subject.CommonName, dev.ID)
		}
		return nil
	}
	return fmt.Errorf("device uses %s authentication, not x509", dev.Auth)
}
