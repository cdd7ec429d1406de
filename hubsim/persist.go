package hubsim

import (
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"os"
	"path/filepath"
	"time"
)

// stateFile is the registry, twins, policies and pending C2D messages.
const stateFile = "state.json"

type savedIdent struct {
	Device Device    `json:"device"`
	Twin   twinState `json:"twin"`
	C2D    []*c2dMsg `json:"c2d,omitempty"`
}

type savedState struct {
	Version    int                `json:"version"`
	Policies   map[string]*Policy `json:"policies"`
	Identities []savedIdent       `json:"identities"`
}

// dirtyLocked marks the state for the next save.
func (h *Hub) dirtyLocked() { h.dirty = true }

// load reads the saved state, if any. Devices added before Start are kept
// unless the file holds the same identity.
func (h *Hub) load() error {
	b, err := os.ReadFile(filepath.Join(h.DataDir, stateFile))
	if errors.Is(err, os.ErrNotExist) {
		h.mu.Lock()
		h.dirty = true
		h.mu.Unlock()
		return nil
	}
	if err != nil {
		return err
	}
	var st savedState
	if err := json.Unmarshal(b, &st); err != nil {
		return fmt.Errorf("%s: %w", stateFile, err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for name, p := range st.Policies {
		h.policies[name] = p
	}
	for _, si := range st.Identities {
		id := newIdent(si.Device)
		if si.Twin.Desired != nil {
			id.twin = si.Twin
		}
		for _, m := range []*map[string]any{&id.twin.Tags, &id.twin.Desired, &id.twin.Reported} {
			if *m == nil {
				*m = map[string]any{}
			}
		}
		id.c2d = si.C2D
		h.idents[si.Device.key()] = id
	}
	return nil
}

// save writes the state if it changed since the last save.
func (h *Hub) save() error {
	h.mu.Lock()
	if !h.dirty {
		h.mu.Unlock()
		return nil
	}
	st := savedState{Version: 1, Policies: h.policies}
	for _, k := range h.sortedKeysLocked() {
		id := h.idents[k]
		st.Identities = append(st.Identities, savedIdent{Device: id.dev, Twin: id.twin, C2D: id.c2d})
	}
	b, err := json.MarshalIndent(st, "", "  ")
	h.dirty = false
	h.mu.Unlock()
	if err != nil {
		return fmt.Errorf("hubsim: encode state: %w", err)
	}
	if err := writeFileAtomic(filepath.Join(h.DataDir, stateFile), b, 0o600); err != nil {
		h.mu.Lock()
		h.dirty = true
		h.mu.Unlock()
		return fmt.Errorf("hubsim: save state: %w", err)
	}
	return nil
}

// persistLoop saves changed state every second while running.
func (h *Hub) persistLoop() {
	if h.DataDir == "" {
		return
	}
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-h.ctx.Done():
			return
		case <-t.C:
			if err := h.save(); err != nil {
				h.log.Warn("hubsim state not saved", "err", err)
			}
		}
	}
}

// writeFileAtomic writes via a synced temporary file and a rename.
func writeFileAtomic(name string, data []byte, perm os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(name), "."+filepath.Base(name)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(perm)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, name)
	}
	if err != nil {
		_ = os.Remove(tmp)
	}
	return err
}

func slogErrorLog(l *slog.Logger) *log.Logger {
	return slog.NewLogLogger(l.Handler(), slog.LevelDebug)
}
