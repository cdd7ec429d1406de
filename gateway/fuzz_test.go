package gateway

import (
	"errors"
	"io/fs"
	"testing"

	"github.com/edgegw/edgegw/configs"
)

// FuzzParse feeds arbitrary bytes to the config loader: it must never
// panic, must fail only with a *ConfigError, and what it accepts must be
// valid.
func FuzzParse(f *testing.F) {
	f.Add([]byte(base))
	f.Add([]byte("hub: {port: 5}\nbuffer:\n  max_age: 5\n"))
	f.Add([]byte("southbound:\n  - name: x\n    lanmqtt: {}\n    simulator: {}\n"))
	f.Add([]byte("&a [*a]"))
	files, _ := fs.Glob(configs.Examples, "*.yaml")
	for _, name := range files {
		data, _ := fs.ReadFile(configs.Examples, name)
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse("fuzz.yaml", data)
		if err != nil {
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("error is not a *ConfigError: %v", err)
			}
			return
		}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("accepted config fails validation: %v", err)
		}
	})
}
