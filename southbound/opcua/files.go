package opcua

import (
	"errors"
	"fmt"
	"os"

	"github.com/edgegw/edgegw"
)

// CheckFiles reads the files c names as Run will (the user certificate and
// key of auth kind certificate) and returns what would stop Run, as
// FieldErrors relative to this config, and a warning for a key file that
// group or others may read.
func (c *Config) CheckFiles() (warnings []*edgegw.FieldError, err error) {
	a := c.Auth
	if a.Kind != "certificate" {
		return nil, nil
	}
	var errs []error
	if _, err := readCertFile(a.CertFile); err != nil {
		errs = append(errs, edgegw.Errorf("auth.cert_file", "%v", err))
	}
	if key, err := readFile(a.KeyFile); err != nil {
		errs = append(errs, edgegw.Errorf("auth.key_file", "%v", err))
	} else if _, err := parseRSAKey(key); err != nil {
		errs = append(errs, edgegw.Errorf("auth.key_file", "%s: %v", a.KeyFile, err))
	} else if st, err := os.Stat(a.KeyFile); err == nil && st.Mode().Perm()&0o077 != 0 {
		warnings = append(warnings, &edgegw.FieldError{Path: "auth.key_file",
			Reason: fmt.Sprintf("%s is readable by group or others (mode %04o): chmod 600 it", a.KeyFile, st.Mode().Perm())})
	}
	return warnings, errors.Join(errs...)
}
