package modbus

import (
	"fmt"
	"strings"
	"testing"
)

func mkPoint(t testing.TB, table, typ string, addr uint16, length uint16) *point {
	t.Helper()
	p := PointConfig{Name: fmt.Sprintf("%s%d", table, addr), Table: table, Type: typ, Address: addr, Length: length}
	(&Config{Devices: []DeviceConfig{{Points: []PointConfig{p}}}}).SetDefaults()
	if p.Order == "" {
		p.Order = "ABCD"
	}
	c, err := newCodec(p)
	if err != nil {
		t.Fatal(err)
	}
	return &point{name: p.Name, addr: addr, codec: c}
}

func describe(reqs []request) string {
	var s []string
	for _, r := range reqs {
		s = append(s, fmt.Sprintf("%s %d+%d/%d", r.table, r.addr, r.count, len(r.points)))
	}
	return strings.Join(s, ", ")
}

func TestPlan(t *testing.T) {
	h := func(addr uint16, typ string) *point { return mkPoint(t, "holding", typ, addr, 0) }
	cases := []struct {
		name   string
		points []*point
		gap    int
		regs   int
		bits   int
		want   string
	}{
		{"adjacent", []*point{h(0, "uint16"), h(1, "float32"), h(3, "int64")}, 0, 125, 2000, "holding 0+7/3"},
		{"unsorted", []*point{h(3, "int64"), h(0, "uint16"), h(1, "float32")}, 0, 125, 2000, "holding 0+7/3"},
		{"gap not bridged", []*point{h(0, "uint16"), h(5, "uint16")}, 3, 125, 2000, "holding 0+1/1, holding 5+1/1"},
		{"gap bridged", []*point{h(0, "uint16"), h(5, "uint16")}, 4, 125, 2000, "holding 0+6/2"},
		{"overlap", []*point{h(0, "uint32"), mkPoint(t, "holding", "bit", 1, 0)}, 0, 125, 2000, "holding 0+2/2"},
		{"limit 125", []*point{h(0, "uint16"), h(124, "uint16"), h(125, "uint16")}, 200, 125, 2000, "holding 0+125/2, holding 125+1/1"},
		{"limit crossing value", []*point{h(0, "uint16"), h(123, "uint32")}, 200, 124, 2000, "holding 0+1/1, holding 123+2/1"},
		{"tables apart", []*point{mkPoint(t, "input", "uint16", 0, 0), h(0, "uint16"), h(1, "uint16"),
			mkPoint(t, "coil", "bool", 0, 0), mkPoint(t, "discrete", "bool", 0, 0)}, 0, 125, 2000,
			"coil 0+1/1, discrete 0+1/1, input 0+1/1, holding 0+2/2"},
		{"bits gap 16x", []*point{mkPoint(t, "coil", "bool", 0, 0), mkPoint(t, "coil", "bool", 17, 0)}, 1, 125, 2000, "coil 0+18/2"},
		{"bits limit", []*point{mkPoint(t, "coil", "bool", 0, 0), mkPoint(t, "coil", "bool", 1999, 0), mkPoint(t, "coil", "bool", 2000, 0)}, 125, 125, 2000,
			"coil 0+2000/2, coil 2000+1/1"},
		{"string", []*point{mkPoint(t, "holding", "string", 10, 8), h(18, "uint16")}, 0, 125, 2000, "holding 10+9/2"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := describe(plan(tc.points, tc.gap, tc.regs, tc.bits))
			if got != tc.want {
				t.Errorf("plan = %s\nwant   %s", got, tc.want)
			}
		})
	}
}

// TestPlanFewestRequests: 1000 adjacent uint16 points need ceil(1000/125)
// requests; 1000 coils one.
func TestPlanFewestRequests(t *testing.T) {
	var regs, coils []*point
	for i := range 1000 {
		regs = append(regs, mkPoint(t, "holding", "uint16", uint16(i), 0))
		coils = append(coils, mkPoint(t, "coil", "bool", uint16(i), 0))
	}
	if n := len(plan(regs, 0, 125, 2000)); n != 8 {
		t.Errorf("1000 registers: %d requests, want 8", n)
	}
	if n := len(plan(coils, 0, 125, 2000)); n != 1 {
		t.Errorf("1000 coils: %d requests, want 1", n)
	}
	if n := len(split(plan(regs[:10], 0, 125, 2000)[0])); n != 10 {
		t.Errorf("split: %d requests, want 10", n)
	}
}
