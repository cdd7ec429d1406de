package mapping

import (
	"time"

	"github.com/edgegw/edgegw"
)

// Config is the "mapping:" section of the gateway's YAML. It holds three
// kinds of rules:
//
//	mapping:
//	  unknown_method_status: 501      # status for a method no rule names (default 501)
//	  devices:                        # up: readings -> telemetry and reported properties
//	    - adapter: plc                # southbound adapter instance name
//	      device: plc-3               # device name within that adapter
//	      identity: plc-3             # hub identity the device speaks as
//	      properties: {source: plc-3} # application properties on every telemetry message (sorted by key)
//	      body:                       # telemetry body shape; default {"<point>": value, ...}
//	        timestamp: ts             # add {"ts": "<reading time, RFC 3339 UTC>"}; "" = none
//	        device: ""                # add {"<field>": "<device name>"}; "" = none
//	        wrap: ""                  # nest the points under this key: {"<wrap>": {...}}
//	        units: false              # points as {"value": v, "unit": "degC"}
//	        content_type: application/json
//	        content_encoding: utf-8
//	      deadband: 0.5               # deadband for points that set none (unset: telemetry on every reading)
//	      max_silence: 15m            # resend unchanged telemetry after this long (default 15m with a deadband)
//	      unlisted: send              # points the reading has but the rule does not list: send | drop
//	      points:
//	        - name: temperature       # point name as the adapter reports it
//	          field: temp             # name in the body and the twin (default: name)
//	          deadband: 0.2           # send when |value - last sent| > deadband (0: on any change)
//	          max_silence: 5m
//	          property: false         # report in the twin's reported properties (on change only)
//	          telemetry: true         # send as telemetry (default: true unless property is true)
//	          writable: false         # accept desired property <field> and method writes
//	          type: float             # bool|int|uint|float|string; required when writable
//	          min: 0                  # writes outside [min, max] are rejected with 400
//	          max: 100
//	          alarm: false            # a true / non-zero / non-empty value is an alarm
//	          alarm_above: 90         # a value above this is an alarm
//	          alarm_below: 5          # a value below this is an alarm
//	        - {name: speed, type: float, writable: true, min: 0, max: 1500}
//	  methods:                        # down: direct methods -> device actions
//	    - identity: plc-3
//	      name: setSpeed
//	      params:                     # the JSON object payload's fields (unknown fields are rejected)
//	        - {name: speed, type: float, min: 0, max: 1500}
//	        - {name: note, type: string, optional: true, default: "", pattern: "^[a-z]*$"}
//	      actions:                    # run in order; nothing runs unless the whole payload is valid
//	        - {kind: write, adapter: plc, device: plc-3, point: speed, param: speed}  # or value: 1200
//	        - {kind: send, adapter: rs485, device: vfd, frame: "SPD ${speed}\r\n"}
//	        - {kind: publish, adapter: lan, topic: "cmd/${identity}", payload: '{"speed":${speed:json}}'}
//	        - {kind: call, adapter: opc, device: boiler, method: start, args: [speed]}  # an OPC UA method
//	      response: '{"ok":true}'     # method response body on success (default {"result":"ok"}, or
//	                                  # a call's output arguments when the rule has a call action)
//	  c2d:                            # down: cloud-to-device messages
//	    - identity: plc-3
//	      kind: publish               # publish | send | ignore
//	      adapter: lan
//	      topic: "c2d/${identity}/${prop:type}"
//
// Templates (frame, topic, payload) replace ${param} with the parameter's
// text (strings verbatim, numbers in plain decimal), ${param:json} with its
// JSON encoding, ${identity}, ${method} and ${payload} (the request body)
// with those, and in C2D topics ${prop:key} with the message's application
// property; "$${" stands for a literal "${". A string substituted verbatim
// must not contain control characters, and a topic no wildcard.
//
// Desired properties need no rules of their own: each writable point of a
// device rule is the desired property <field> of the rule's identity. A
// method write action must target such a writable point, whose type and
// limits then apply to the value as well as the parameter's own.
//
// Identities is not read from YAML: the gateway sets it to the identities
// it owns. Validate then refuses rules naming any other identity, and Up
// routes a ready-made message from a LAN device that names its identity
// only if it is one of them. When Identities is empty, the identities of
// the device rules are the ones owned.
type Config struct {
	UnknownMethodStatus int               `yaml:"unknown_method_status"`
	Devices             []DeviceRule      `yaml:"devices"`
	Methods             []MethodRule      `yaml:"methods"`
	C2D                 []C2DRule         `yaml:"c2d"`
	Identities          []edgegw.DeviceID `yaml:"-"`
}

// DeviceRule routes the readings of one device to one identity.
type DeviceRule struct {
	Adapter    string            `yaml:"adapter"`
	Device     string            `yaml:"device"`
	Identity   edgegw.DeviceID   `yaml:"identity"`
	Properties map[string]string `yaml:"properties"`
	Body       Body              `yaml:"body"`
	Deadband   *float64          `yaml:"deadband"`
	MaxSilence time.Duration     `yaml:"max_silence"`
	Unlisted   string            `yaml:"unlisted"`
	Points     []PointRule       `yaml:"points"`
}

// Body is the shape of a telemetry message body.
type Body struct {
	Timestamp       string `yaml:"timestamp"`
	Device          string `yaml:"device"`
	Wrap            string `yaml:"wrap"`
	Units           bool   `yaml:"units"`
	ContentType     string `yaml:"content_type"`
	ContentEncoding string `yaml:"content_encoding"`
}

// PointRule holds the options of one point of a device rule.
type PointRule struct {
	Name       string        `yaml:"name"`
	Field      string        `yaml:"field"`
	Deadband   *float64      `yaml:"deadband"`
	MaxSilence time.Duration `yaml:"max_silence"`
	Property   bool          `yaml:"property"`
	Telemetry  *bool         `yaml:"telemetry"`
	Writable   bool          `yaml:"writable"`
	Type       Type          `yaml:"type"`
	Min        *float64      `yaml:"min"`
	Max        *float64      `yaml:"max"`
	Alarm      bool          `yaml:"alarm"`
	AlarmAbove *float64      `yaml:"alarm_above"`
	AlarmBelow *float64      `yaml:"alarm_below"`
}

// MethodRule turns one direct method of one identity into actions.
type MethodRule struct {
	Identity edgegw.DeviceID `yaml:"identity"`
	Name     string          `yaml:"name"`
	Params   []Param         `yaml:"params"`
	Actions  []ActionRule    `yaml:"actions"`
	Response string          `yaml:"response"`
}

// Param is one field of a method's JSON object payload.
type Param struct {
	Name     string   `yaml:"name"`
	Type     Type     `yaml:"type"`
	Min      *float64 `yaml:"min"`
	Max      *float64 `yaml:"max"`
	Optional bool     `yaml:"optional"`
	Default  *Scalar  `yaml:"default"`
	Pattern  string   `yaml:"pattern"`
}

// ActionRule is one action of a method or C2D rule. Kind is write, send,
// publish or call (and ignore for C2D rules). A call action calls the
// adapter's procedure Method of Device with the parameters named by Args,
// in order, each declared in params with its type and limits.
type ActionRule struct {
	Kind    string   `yaml:"kind"`
	Adapter string   `yaml:"adapter"`
	Device  string   `yaml:"device"`
	Point   string   `yaml:"point"`
	Param   string   `yaml:"param"`
	Value   *Scalar  `yaml:"value"`
	Frame   string   `yaml:"frame"`
	Topic   string   `yaml:"topic"`
	Payload string   `yaml:"payload"`
	Method  string   `yaml:"method"`
	Args    []string `yaml:"args"`
}

// C2DRule says what to do with the cloud-to-device messages of one
// identity: publish the body to a LAN topic, send it to a device as a
// frame, or ignore it. An identity without a rule has its messages
// acknowledged (status 200) and nothing else; the gateway logs them.
type C2DRule struct {
	Identity edgegw.DeviceID `yaml:"identity"`
	Kind     string          `yaml:"kind"`
	Adapter  string          `yaml:"adapter"`
	Device   string          `yaml:"device"`
	Topic    string          `yaml:"topic"`
}

// Defaults.
const (
	DefaultUnknownMethodStatus = 501
	DefaultContentType         = "application/json"
	DefaultContentEncoding     = "utf-8"
	DefaultMaxSilence          = 15 * time.Minute
	DefaultResponse            = `{"result":"ok"}`
)

// SetDefaults fills zero fields with their defaults.
func (c *Config) SetDefaults() {
	edgegw.SetDefault(&c.UnknownMethodStatus, DefaultUnknownMethodStatus)
	for i := range c.Devices {
		d := &c.Devices[i]
		edgegw.SetDefault(&d.Body.ContentType, DefaultContentType)
		edgegw.SetDefault(&d.Body.ContentEncoding, DefaultContentEncoding)
		edgegw.SetDefault(&d.Unlisted, "send")
		if d.Deadband != nil && d.MaxSilence == 0 {
			d.MaxSilence = DefaultMaxSilence
		}
		for j := range d.Points {
			p := &d.Points[j]
			edgegw.SetDefault(&p.Field, p.Name)
			if p.Deadband != nil && p.MaxSilence == 0 && d.MaxSilence == 0 {
				p.MaxSilence = DefaultMaxSilence
			}
			if p.Telemetry == nil {
				t := !p.Property
				p.Telemetry = &t
			}
		}
	}
	for i := range c.Methods {
		if c.Methods[i].Response == "" {
			c.Methods[i].Response = DefaultResponse
		}
	}
}
