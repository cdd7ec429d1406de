package modbus

import (
	"sort"

	"github.com/edgegw/edgegw"
)

// point is one configured point, ready to read and write.
type point struct {
	name     string
	unit     string // engineering unit
	addr     uint16
	codec    codec
	writable bool
	verify   bool
	multiple bool // write with FC 15/16
}

// request is one read: a contiguous range of one table covering points.
type request struct {
	table  table
	addr   uint16
	count  uint16 // registers or bits
	points []*point
}

// plan groups points into the fewest read requests: per table, points in
// address order share a request while the range stays within the limit
// (maxRegs registers or maxBits bits) and the hole before the next point is
// at most maxGap registers (16*maxGap bits). Overlapping points share too.
func plan(points []*point, maxGap, maxRegs, maxBits int) []request {
	sorted := append([]*point(nil), points...)
	sort.SliceStable(sorted, func(i, j int) bool {
		a, b := sorted[i], sorted[j]
		if a.codec.table != b.codec.table {
			return a.codec.table < b.codec.table
		}
		return a.addr < b.addr
	})
	var out []request
	var cur *request
	for _, p := range sorted {
		start, end := int(p.addr), int(p.addr)+p.codec.width()
		limit, gap := maxRegs, maxGap
		if p.codec.isBits() {
			limit, gap = maxBits, 16*maxGap
		}
		if cur != nil && cur.table == p.codec.table {
			curEnd := int(cur.addr) + int(cur.count)
			newEnd := max(curEnd, end)
			if start-curEnd <= gap && newEnd-int(cur.addr) <= limit {
				cur.count = uint16(newEnd - int(cur.addr))
				cur.points = append(cur.points, p)
				continue
			}
		}
		out = append(out, request{table: p.codec.table, addr: p.addr, count: uint16(end - start), points: []*point{p}})
		cur = &out[len(out)-1]
	}
	return out
}

// split returns one request per point of r, for devices that refuse a
// range crossing addresses they do not implement.
func split(r request) []request {
	out := make([]request, 0, len(r.points))
	for _, p := range r.points {
		out = append(out, request{table: r.table, addr: p.addr, count: uint16(p.codec.width()), points: []*point{p}})
	}
	return out
}

// extract returns the value of p from the response data of r: packed bits
// for a bit table, a register image otherwise.
func (r *request) extract(p *point, data []byte) (edgegw.Value, error) {
	off := int(p.addr) - int(r.addr)
	if p.codec.isBits() {
		if off < 0 || off/8 >= len(data) {
			return edgegw.Value{}, ErrShortFrame
		}
		return decodeBit(data, off), nil
	}
	lo, hi := 2*off, 2*(off+p.codec.width())
	if off < 0 || hi > len(data) {
		return edgegw.Value{}, ErrShortFrame
	}
	return p.codec.decode(data[lo:hi])
}
