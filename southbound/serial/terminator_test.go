package serial

import (
	"context"
	"slices"
	"testing"

	"github.com/edgegw/edgegw"
	"github.com/edgegw/edgegw/internal/testpeer"
)

// A frame is terminated once: one written with the port's terminator goes
// out as written, any other gets the terminator appended.
func TestSendFrameTerminatedOnce(t *testing.T) {
	for _, tc := range []struct {
		name, term string
		frames     []string
		lines      []string // what the peer reads, line by line
	}{
		{"default terminator", "", []string{"CAL 1.25\r\n", "CAL 2", "RESET\n", "END"},
			[]string{"CAL 1.25\r\n", "CAL 2\r\n", "RESET\n", "\r\n", "END\r\n"}},
		{"newline terminator", "\n", []string{"CAL 1.25\r\n", "CAL 2", "A\n\n", "END"},
			[]string{"CAL 1.25\r\n", "CAL 2\n", "A\n", "\n", "END\n"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pp := startSocat(t, t.TempDir())
			cfg := testConfig(pp.linkA)
			cfg.Terminator = tc.term
			a := run(t, cfg, &testpeer.Uplink{})
			eventually(t, "port open", a.isOpen)
			peer := pp.peer()
			for _, f := range tc.frames {
				act := edgegw.Action{Kind: edgegw.SendFrame, Device: "thermo", Payload: []byte(f)}
				if err := a.Execute(context.Background(), act); err != nil {
					t.Fatal(err)
				}
			}
			var got []string
			for range tc.lines {
				got = append(got, peer.readLine())
			}
			if !slices.Equal(got, tc.lines) {
				t.Fatalf("peer read %q, want %q", got, tc.lines)
			}
		})
	}
}
