package main

import (
	"fmt"
	"io"
	"log/slog"

	"github.com/edgegw/edgegw/gateway"
)

// checkFiles opens every file cfg names (gateway.Config.CheckFiles). It
// prints the warnings, on stderr as "file: path: warning: reason" for
// `check`, or to log for `run` (where the identity room repeats its own).
// It returns 2 when a file is unusable (printed on stderr), else 0.
func checkFiles(cfg *gateway.Config, stderr io.Writer, log *slog.Logger) int {
	warnings, err := cfg.CheckFiles()
	for _, w := range warnings {
		switch {
		case log == nil:
			fmt.Fprintf(stderr, "%s: %s: warning: %s\n", cfg.File, w.Path, w.Reason)
		case !gateway.IdentityWarning(w):
			log.Warn("config: "+w.Reason, "file", cfg.File, "path", w.Path)
		}
	}
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	return 0
}
