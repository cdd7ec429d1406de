package hubsim

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// ErrNoSavedState is returned by the Saved* readers when dataDir holds no
// saved state: the hub has not run with it yet.
var ErrNoSavedState = errors.New("no saved hub state (has the hub run with this data dir?)")

// readSaved reads the state a hub saved in dataDir, without starting one.
func readSaved(dataDir string) (*savedState, error) {
	path := filepath.Join(dataDir, stateFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", path, ErrNoSavedState)
	}
	if err != nil {
		return nil, err
	}
	var st savedState
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &st, nil
}

// SavedDevice returns the registered device ("device") or module
// ("device/module") identity id from the state a hub saved in dataDir: how
// tools find the keys the embedded hub generated for keyless identities.
func SavedDevice(dataDir, id string) (Device, error) {
	st, err := readSaved(dataDir)
	if err != nil {
		return Device{}, err
	}
	for _, si := range st.Identities {
		if si.Device.key() == id {
			return si.Device, nil
		}
	}
	return Device{}, fmt.Errorf("%w: %s", ErrDeviceNotFound, id)
}

// SavedPolicy returns the shared access policy named name (any case) from
// the state a hub saved in dataDir.
func SavedPolicy(dataDir, name string) (Policy, error) {
	st, err := readSaved(dataDir)
	if err != nil {
		return Policy{}, err
	}
	for n, p := range st.Policies {
		if strings.EqualFold(n, name) && p != nil {
			return *p, nil
		}
	}
	return Policy{}, fmt.Errorf("no shared access policy %q", name)
}
