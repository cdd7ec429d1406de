package main

import (
	"context"
	"log/slog"
	"os"

	"github.com/edgegw/edgegw/gateway"
)

// reloadOnHangup reads the config file again on every signal from hup
// (SIGHUP) and applies it to gw once gw is ready. An invalid file is
// logged (file: path: reason) and changes nothing. It returns when ctx
// ends.
func reloadOnHangup(ctx context.Context, gw *gateway.Gateway, path string, hup <-chan os.Signal, log *slog.Logger) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
		}
		select {
		case <-ctx.Done():
			return
		case <-gw.Ready():
		}
		if path == "" {
			log.Warn("SIGHUP: running the embedded quickstart config; there is no file to reload")
			continue
		}
		log.Info("SIGHUP: reloading the config", "file", path)
		cfg, err := gateway.LoadFile(path)
		if err == nil {
			err = checkFilesLogged(cfg, log) // every file it names must open, as at start
		}
		if err == nil {
			err = gw.Reload(ctx, cfg)
		}
		if err != nil && ctx.Err() == nil {
			log.Error("config reload refused; running on the config as it was", "err", err)
		}
	}
}
