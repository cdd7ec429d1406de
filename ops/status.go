package ops

import "time"

// Status is what GET /status returns: the schema is stable and documented
// in the README. Keys are snake_case; durations are in seconds; a time that
// is not known (never connected, nothing queued) is absent, not zero;
// counters count since the gateway started.
type Status struct {
	Time          time.Time  `json:"time"`
	StartTime     time.Time  `json:"start_time"`
	UptimeSeconds float64    `json:"uptime_seconds"`
	Ready         Readiness  `json:"ready"`
	Identities    []Identity `json:"identities"`
	Buffer        Buffer     `json:"buffer"`
	Adapters      []Adapter  `json:"adapters"`
	Commands      Commands   `json:"commands"`
}

// Identity is one identity's connection to the hub and its queue.
type Identity struct {
	ID string `json:"id"`
	// Hub is the hub this identity connects to: the configured one, or
	// the one the provisioning service assigned (absent until known);
	// DeviceID is its device id there, when DPS assigned another.
	Hub            string     `json:"hub,omitempty"`
	DeviceID       string     `json:"device_id,omitempty"`
	Connected      bool       `json:"connected"`
	ConnectedSince *time.Time `json:"connected_since,omitempty"`
	// Queued counts messages in the buffer not yet acknowledged by the
	// hub; OldestQueued is when the oldest of them was stored.
	Queued           int64      `json:"queued_messages"`
	QueuedBytes      int64      `json:"queued_bytes"`
	OldestQueued     *time.Time `json:"oldest_queued,omitempty"`
	OldestAgeSeconds *float64   `json:"oldest_queued_age_seconds,omitempty"`
	InFlight         int        `json:"in_flight"`
	LastAck          *time.Time `json:"last_ack,omitempty"`
	Sent             uint64     `json:"messages_sent"`
	Resent           uint64     `json:"messages_resent"`
	Acknowledged     uint64     `json:"messages_acknowledged"`
	Undeliverable    uint64     `json:"messages_undeliverable"`
	// BufferDrops counts this identity's records the buffer dropped, by
	// reason (retention by age or by size).
	BufferDrops        map[string]uint64 `json:"buffer_drops,omitempty"`
	CommandsReceived   uint64            `json:"commands_received"`
	CommandsThrottled  uint64            `json:"commands_throttled"`
	Reconnects         uint64            `json:"reconnects"`
	ReconnectsByReason map[string]uint64 `json:"reconnects_by_reason,omitempty"`
	TokenRenewals      uint64            `json:"token_renewals"`
	TokenExpiry        *time.Time        `json:"token_expiry,omitempty"`
	LastError          *LastError        `json:"last_error,omitempty"`
}

// LastError is the newest error of a connection or device, kept after
// recovery with the time it cleared.
type LastError struct {
	Message string     `json:"message"`
	Time    time.Time  `json:"time"`
	Cleared *time.Time `json:"cleared,omitempty"` // absent while the error stands
}

// Buffer is the durable queue.
type Buffer struct {
	Records        int64             `json:"records"`
	StoredBytes    int64             `json:"stored_bytes"`
	MaxBytes       int64             `json:"max_bytes"`
	DiskUsageBytes *int64            `json:"disk_usage_bytes,omitempty"`
	DiskFreeBytes  *int64            `json:"disk_free_bytes,omitempty"`
	DiskFull       bool              `json:"disk_full"`
	Appended       uint64            `json:"records_appended"`
	Commits        uint64            `json:"commits"`
	AppendCommits  uint64            `json:"append_commits"`
	AppendErrors   uint64            `json:"append_errors"`
	Drops          map[string]uint64 `json:"drops"`
	Compactions    uint64            `json:"compactions"`
}

// Adapter is one southbound adapter; exactly one of the kind's sections is
// set.
type Adapter struct {
	Name      string     `json:"name"`
	Kind      string     `json:"kind"` // lanmqtt, modbus, opcua, serial, simulator (other: no counters yet)
	LAN       *LAN       `json:"lanmqtt,omitempty"`
	Modbus    *Modbus    `json:"modbus,omitempty"`
	OPCUA     *OPCUA     `json:"opcua,omitempty"`
	Serial    *Serial    `json:"serial,omitempty"`
	Simulator *Simulator `json:"simulator,omitempty"`
}

// LAN is the embedded MQTT broker for LAN devices.
type LAN struct {
	Clients           int64  `json:"clients"`
	Connects          uint64 `json:"connects"`
	AuthFailures      uint64 `json:"auth_failures"`
	ACLDenials        uint64 `json:"acl_denials"`
	PublishesReceived uint64 `json:"publishes_received"`
	PublishesStored   uint64 `json:"publishes_stored"`
	// PublishesRefused counts publishes not acknowledged, by reason:
	// too_large, bad_property_bag, unroutable, not_stored.
	PublishesRefused  map[string]uint64 `json:"publishes_refused"`
	ClosedOnRefusal   uint64            `json:"connections_closed_on_refusal"`
	ConnectionErrors  uint64            `json:"connection_errors"`
	SubscriberDrops   uint64            `json:"subscriber_drops"`
	CommandsPublished uint64            `json:"commands_published"`
}

// Modbus is one Modbus bus and its devices.
type Modbus struct {
	Bus           string         `json:"bus"`
	Connected     bool           `json:"connected"`
	Connects      uint64         `json:"connects"`
	ConnectErrors uint64         `json:"connect_errors"`
	Disconnects   uint64         `json:"disconnects"`
	Devices       []ModbusDevice `json:"devices"`
}

// ModbusDevice is one unit on a bus.
type ModbusDevice struct {
	Name string `json:"name"`
	Unit uint8  `json:"unit"`
	// State is unknown (not yet polled), up, down (does not answer) or
	// disconnected (the bus is not connected).
	State        string            `json:"state"`
	Polls        uint64            `json:"polls"`
	Requests     uint64            `json:"requests"`
	Readings     uint64            `json:"readings"`
	SubmitErrors uint64            `json:"readings_refused"`
	Dropped      uint64            `json:"readings_dropped"`
	Writes       uint64            `json:"writes"`
	WriteErrors  uint64            `json:"write_errors"`
	Errors       map[string]uint64 `json:"errors"`     // by kind: timeout, crc, short, wrong_unit, protocol, link, verify, other
	Exceptions   map[string]uint64 `json:"exceptions"` // by exception code
	Latency      Histogram         `json:"request_seconds"`
	LastError    *LastError        `json:"last_error,omitempty"`
	NextAttempt  *time.Time        `json:"next_attempt,omitempty"`
}

// OPCUA is one OPC UA server (one session) and the devices read from it.
type OPCUA struct {
	Endpoint      string `json:"endpoint"`
	Security      string `json:"security"` // policy/mode: None/None, Basic256Sha256/SignAndEncrypt
	Connected     bool   `json:"connected"`
	Connects      uint64 `json:"connects"`
	ConnectErrors uint64 `json:"connect_errors"`
	Disconnects   uint64 `json:"disconnects"`
	// UntrustedCertificate is the SHA-1 thumbprint of the last server
	// certificate refused for not being trusted (absent when none was).
	UntrustedCertificate string        `json:"untrusted_certificate,omitempty"`
	LastError            *LastError    `json:"last_error,omitempty"`
	Devices              []OPCUADevice `json:"devices"`
}

// OPCUADevice is one group of points of an OPC UA server.
type OPCUADevice struct {
	Name string `json:"name"`
	Mode string `json:"mode"` // subscribe or poll
	// Values counts point values passed up; Readings the readings the
	// uplink stored, SubmitErrors those it refused.
	Values       uint64 `json:"values"`
	Readings     uint64 `json:"readings"`
	SubmitErrors uint64 `json:"readings_refused"`
	// BadValues counts values left out for a Bad status, by status name
	// (BadSensorFailure); Uncertain those passed up with an Uncertain one.
	BadValues   map[string]uint64 `json:"bad_values"`
	Uncertain   uint64            `json:"uncertain_values"`
	TypeErrors  uint64            `json:"type_errors"`   // values of another type than configured, left out
	Duplicates  uint64            `json:"duplicates"`    // values sent again with a timestamp already passed up
	Refused     map[string]uint64 `json:"refused_items"` // monitored items or reads the server refused, by status name
	Polls       uint64            `json:"polls"`
	Writes      uint64            `json:"writes"`
	Calls       uint64            `json:"calls"`
	WriteErrors uint64            `json:"write_errors"`
	CallErrors  uint64            `json:"call_errors"`
}

// Serial is one serial line.
type Serial struct {
	Open         bool   `json:"open"`
	Lines        uint64 `json:"lines"`
	Garbage      uint64 `json:"garbage_lines"`
	Overlong     uint64 `json:"overlong_lines"`
	Readings     uint64 `json:"readings"`
	BadValues    uint64 `json:"bad_values"`
	Refused      uint64 `json:"readings_refused"`
	Reopens      uint64 `json:"reopens"`
	OpenFailures uint64 `json:"open_failures"`
	Writes       uint64 `json:"writes"`
}

// Simulator is the built-in simulated device source.
type Simulator struct {
	Readings uint64 `json:"readings"`
	Refused  uint64 `json:"readings_refused"`
}

// Histogram is a distribution of durations in seconds with cumulative
// buckets, as Prometheus keeps them.
type Histogram struct {
	Count   uint64   `json:"count"`
	Sum     float64  `json:"sum"`
	Buckets []Bucket `json:"buckets"`
}

// Bucket counts the observations at most LE seconds.
type Bucket struct {
	LE    float64 `json:"le"`
	Count uint64  `json:"count"`
}

// Readiness says whether data is moving, and if not, why.
type Readiness struct {
	Ready   bool     `json:"ready"`
	Reasons []Reason `json:"reasons,omitempty"`
}

// Reason is one cause of unreadiness.
type Reason struct {
	// Kind is starting, identity_stalled, disk_full or adapter_unreachable.
	Kind    string `json:"kind"`
	Subject string `json:"subject,omitempty"` // the identity or adapter
	Detail  string `json:"detail"`
}
