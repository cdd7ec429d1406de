package opcua

import (
	"errors"

	"github.com/edgegw/edgegw"
)

// CheckFiles reads the files c names as Run will (a certificate user
// token's certificate and RSA key) and returns what would stop Run, as
// FieldErrors relative to this config, so that `edgegw check` and `edgegw
// run` report it before anything starts.
func (c *Config) CheckFiles() error {
	if c.Auth.Kind != "certificate" {
		return nil
	}
	var errs []error
	if _, err := readCertFile(c.Auth.CertFile); err != nil {
		errs = append(errs, edgegw.Errorf("auth.cert_file", "%v", err))
	}
	data, err := readFile(c.Auth.KeyFile)
	if err == nil {
		if _, err = parseRSAKey(data); err != nil {
			err = errors.New(c.Auth.KeyFile + ": " + err.Error())
		}
	}
	if err != nil {
		errs = append(errs, edgegw.Errorf("auth.key_file", "%v", err))
	}
	return errors.Join(errs...)
}
