package edgegw

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
)

// FieldError is a configuration error at one path of the config tree, such
// as "southbound[1].modbus.timeout". Each package's Config.Validate returns
// FieldErrors with paths relative to its own config; callers add their
// prefix with [PrefixErrors]. The gateway adds the file name.
type FieldError struct {
	Path   string
	Reason string
}

func (e *FieldError) Error() string {
	if e.Path == "" {
		return e.Reason
	}
	return e.Path + ": " + e.Reason
}

// SetDefault sets *p to v when *p is the zero value: the one line each
// Config.SetDefaults repeats per field.
func SetDefault[T comparable](p *T, v T) {
	var zero T
	if *p == zero {
		*p = v
	}
}

// Errorf returns a *FieldError for path with a formatted reason.
func Errorf(path, format string, args ...any) error {
	return &FieldError{Path: path, Reason: fmt.Sprintf(format, args...)}
}

// PrefixErrors returns err with prefix put before the path of every
// FieldError in it (joined errors are walked); other errors become a
// FieldError at prefix. It returns nil for a nil err.
func PrefixErrors(prefix string, err error) error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, PrefixErrors(prefix, e))
		}
		return errors.Join(out...)
	}
	var fe *FieldError
	if errors.As(err, &fe) {
		return &FieldError{Path: joinPath(prefix, fe.Path), Reason: fe.Reason}
	}
	return &FieldError{Path: prefix, Reason: err.Error()}
}

func joinPath(prefix, path string) string {
	switch {
	case prefix == "":
		return path
	case path == "":
		return prefix
	case strings.HasPrefix(path, "["):
		return prefix + path
	}
	return prefix + "." + path
}

// Names checks the names of one config list's entries: each must be set
// and appear once. Use one Names per list.
type Names struct {
	list string
	seen map[string]int
}

// NewNames returns a checker for the list called list ("devices").
func NewNames(list string) *Names { return &Names{list: list, seen: map[string]int{}} }

// Check checks the name of entry i, found at path, and remembers it.
func (n *Names) Check(path string, i int, name string) error {
	if name == "" {
		return Errorf(path, "must be set")
	}
	if j, dup := n.seen[name]; dup {
		return Errorf(path, "duplicate of %s[%d] (%q)", n.list, j, name)
	}
	n.seen[name] = i
	return nil
}

// Secret is a string that must never be printed: keys, passwords, tokens.
// It formats as "[redacted]" with every fmt verb, in slog and in JSON; use
// Reveal where the real value is needed.
type Secret string

const redacted = "[redacted]"

// Reveal returns the secret's value.
func (s Secret) Reveal() string { return string(s) }

// String returns "[redacted]" (or "" for an empty secret).
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return redacted
}

// GoString returns the same as String, so %#v hides the value too.
func (s Secret) GoString() string { return s.String() }

// Format hides the value from every fmt verb (%v, %s, %q, %x, ...).
func (s Secret) Format(f fmt.State, verb rune) { fmt.Fprint(f, s.String()) }

// MarshalText returns "[redacted]", so JSON and YAML encoders hide it too.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// LogValue hides the value from log/slog.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }
