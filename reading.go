package edgegw

import "time"

// DeviceID names one identity at the hub: a device id ("pump-7"), or a
// device id and a module id joined by a slash ("gw-1/modbus") for a module
// identity. Each DeviceID has its own MQTT connection to the hub and its own
// ordered stream in the buffer.
type DeviceID string

// Point is one named value read from a device.
type Point struct {
	Name  string // point name from config, unique within its device
	Value Value
	Unit  string // engineering unit from config ("degC", "kWh"); may be empty
}

// Reading is what a southbound adapter hands up: either point values polled
// from one local device, or a ready-made Message published by a LAN device.
// Exactly one of Points and Message is set.
//
// A point that could not be read is left out of Points; it is never sent as a
// zero.
type Reading struct {
	Adapter string    // the adapter instance's name from config
	Device  string    // the local device's name within that adapter
	Time    time.Time // when the values were read (the source timestamp)
	Points  []Point
	Message *Message
}

// Property is one key/value pair of a message's property bag. Order is kept.
type Property struct {
	Key, Value string
}

// PointInfo describes one configured point of one adapter's device, so that
// mapping rules can be checked against what the adapters provide.
type PointInfo struct {
	Adapter, Device, Point string
	Kind                   Kind // the value's kind after decoding
	Writable               bool // the adapter can write it
}
