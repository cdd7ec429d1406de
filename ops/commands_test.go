package ops

import (
	"fmt"
	"testing"
	"time"
)

func TestCommandLog(t *testing.T) {
	var c CommandLog
	if s := c.Snapshot(); len(s.Counts) != 0 || len(s.Recent) != 0 {
		t.Fatalf("empty log: %+v", s)
	}
	t0 := time.Unix(1_700_000_000, 0)
	for i := range RecentCommands + 5 {
		c.Record(CommandRecord{Time: t0.Add(time.Duration(i) * time.Second), Identity: "a", Kind: "method", Name: fmt.Sprint(i), Status: 200, Seconds: 0.003})
	}
	c.Record(CommandRecord{Time: t0.Add(time.Hour), Identity: "a", Kind: "method", Name: "odd", Status: 299, Seconds: 60})
	c.Record(CommandRecord{Time: t0.Add(time.Hour), Identity: "a", Kind: "desired", Status: 400, Seconds: 0.02})
	s := c.Snapshot()
	want := []CommandCount{{"desired", "400", 1}, {"method", "200", RecentCommands + 5}, {"method", "other", 1}}
	if fmt.Sprint(s.Counts) != fmt.Sprint(want) {
		t.Errorf("counts %v, want %v", s.Counts, want)
	}
	if len(s.Recent) != RecentCommands || s.Recent[0].Kind != "desired" || s.Recent[1].Name != "odd" || s.Recent[RecentCommands-1].Name != "7" {
		t.Errorf("recent: %d, first %+v, last %+v", len(s.Recent), s.Recent[0], s.Recent[len(s.Recent)-1])
	}
	h := s.Seconds["method"]
	if h.Count != RecentCommands+6 || h.Buckets[0].Count != RecentCommands+5 || h.Buckets[len(h.Buckets)-1].Count != RecentCommands+5 {
		t.Errorf("method histogram %+v", h)
	}
}
