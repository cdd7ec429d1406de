package edgegw

import "fmt"

// CommandKind says how a command reached the gateway.
type CommandKind uint8

// Command kinds.
const (
	// Method is a direct method call; it is answered with a Result.
	Method CommandKind = iota + 1
	// Desired is a desired-properties patch (or the desired section of a
	// full twin after a reconnect). It is answered in the reported
	// properties, one acknowledgement per property.
	Desired
	// C2D is a cloud-to-device message. It has no answer; it is completed
	// once handed to mapping.
	C2D
)

func (k CommandKind) String() string {
	switch k {
	case Method:
		return "method"
	case Desired:
		return "desired"
	case C2D:
		return "c2d"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Command is one instruction from the hub to one identity, before validation.
type Command struct {
	Identity DeviceID
	Kind     CommandKind
	Name     string     // method name (Method only)
	Payload  []byte     // method payload (JSON), desired patch (JSON object) or C2D body
	Version  int64      // desired "$version" (Desired only)
	Full     bool       // the whole desired section, read after a connect, not a patch (Desired only)
	Props    []Property // C2D application properties (C2D only)
}

// ActionKind says what an adapter is asked to do.
type ActionKind uint8

// Action kinds.
const (
	// WritePoint writes Value to the point named Point of Device.
	WritePoint ActionKind = iota + 1
	// SendFrame sends Payload as a command to Device (serial line or frame).
	SendFrame
	// PublishLAN publishes Payload on Topic to LAN devices.
	PublishLAN
	// CallMethod calls the procedure Method of Device with Args, and
	// returns its output (an OPC UA method call).
	CallMethod
)

func (k ActionKind) String() string {
	switch k {
	case WritePoint:
		return "write"
	case SendFrame:
		return "send"
	case PublishLAN:
		return "publish"
	case CallMethod:
		return "call"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Action is one validated instruction for one southbound adapter. Mapping
// produces actions only from a command that is valid as a whole.
type Action struct {
	Adapter string // adapter instance name from config
	Device  string // device name within the adapter
	Kind    ActionKind
	Point   string // WritePoint
	Value   Value  // WritePoint
	Topic   string // PublishLAN
	Payload []byte // SendFrame, PublishLAN
	Method  string // CallMethod
	Args    []Value
}

func (a Action) String() string {
	switch a.Kind {
	case WritePoint:
		return fmt.Sprintf("%s/%s: write %s = %s", a.Adapter, a.Device, a.Point, a.Value)
	case PublishLAN:
		return fmt.Sprintf("%s: publish %s (%d bytes)", a.Adapter, a.Topic, len(a.Payload))
	case CallMethod:
		return fmt.Sprintf("%s/%s: call %s%v", a.Adapter, a.Device, a.Method, a.Args)
	}
	return fmt.Sprintf("%s/%s: %s (%d bytes)", a.Adapter, a.Device, a.Kind, len(a.Payload))
}

// Result answers a command, with HTTP-style status codes as IoT Hub uses
// them: 200 done, 400 invalid (nothing was written), 404 unknown target,
// 501 unknown method, 502/504 the device failed or did not answer.
type Result struct {
	Status  int
	Payload []byte // JSON; for a method, the response body
}
