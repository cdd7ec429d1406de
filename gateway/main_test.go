package gateway

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	if path := os.Getenv(childEnv); path != "" {
		os.Exit(runChild(path))
	}
	// Every room the gateway starts must have stopped when Run returns.
	goleak.VerifyTestMain(m)
}
