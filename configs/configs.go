// Package configs holds the documented example configurations. The
// quickstart config is embedded in the binary: `edgegw run` without -config
// runs it. A test in the gateway package loads every file here.
package configs

import (
	"embed"
	_ "embed"
)

// Quickstart is quickstart.yaml: a LAN broker, a simulated device and an
// embedded hub emulator, all on localhost.
//
//go:embed quickstart.yaml
var Quickstart []byte

// Examples holds every example config file (*.yaml).
//
//go:embed *.yaml
var Examples embed.FS
