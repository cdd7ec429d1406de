package lanmqtt

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/mochi-mqtt/server/v2/packets"
)

// TestQuietHandlerHidesPackets: mochi logs whole packets on some lines; a
// CONNECT carries the client's password, which must never reach our log.
func TestQuietHandlerHidesPackets(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(quietHandler{h: slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})})
	pk := packets.Packet{Connect: packets.ConnectParams{Username: []byte("dev"), Password: []byte("SharedAccessSignature sig=TOPSECRET")}}
	log.Warn("error receiving packet", "client", "dev", "pk", pk)
	log.LogAttrs(context.Background(), slog.LevelWarn, "x", slog.Any("other", &pk))
	out := buf.String()
	if strings.Contains(out, "TOPSECRET") {
		t.Fatalf("password reached the log: %s", out)
	}
	if !strings.Contains(out, "client=dev") || !strings.Contains(out, "level=DEBUG") {
		t.Errorf("other attributes or the lowered level were lost: %s", out)
	}
}
