package main

import (
	"fmt"
	"io"
	"log/slog"

	"github.com/edgegw/edgegw"
	"github.com/edgegw/edgegw/gateway"
)

// checkFiles opens every file cfg names (gateway.Config.CheckFiles). It
// prints the warnings, on stderr as "file: path: warning: reason" for
// `check`, or to log for `run` (where the identity room repeats its own).
// It returns 2 when a file is unusable (printed on stderr), else 0.
func checkFiles(cfg *gateway.Config, stderr io.Writer, log *slog.Logger) int {
	var err error
	if log == nil {
		var warnings []*edgegw.FieldError
		warnings, err = cfg.CheckFiles()
		for _, w := range warnings {
			fmt.Fprintf(stderr, "%s: %s: warning: %s\n", cfg.File, w.Path, w.Reason)
		}
	} else {
		err = checkFilesLogged(cfg, log)
	}
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	return 0
}

// checkFilesLogged opens every file cfg names and logs the warnings (but
// the identity room's own, which it logs when it loads them); it returns
// what makes a file unusable.
func checkFilesLogged(cfg *gateway.Config, log *slog.Logger) error {
	warnings, err := cfg.CheckFiles()
	for _, w := range warnings {
		if !gateway.IdentityWarning(w) {
			log.Warn("config: "+w.Reason, "file", cfg.File, "path", w.Path)
		}
	}
	return err
}
