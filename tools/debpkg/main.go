// Command debpkg builds edgegw's Debian packages (amd64, arm64, armhf) from
// the static binaries of `make cross`, with nfpm as a library: the binary in
// /usr/bin, the systemd unit, /etc/edgegw/edgegw.yaml as a conffile (the
// plant example, to be edited), the example configs, and maintainer scripts
// that create the edgegw system user and /var/lib/edgegw (mode 0750) on
// install and remove both on purge.
//
// It is a module of its own so that nfpm's dependencies (git, PGP, archive
// formats) stay out of the gateway's go.mod. `make deb` runs it:
//
//	go run . -version v1.2.3 -root ../.. -dist ../../dist [-arch amd64,arm64,armhf]
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/goreleaser/nfpm/v2"
	_ "github.com/goreleaser/nfpm/v2/deb" // registers the deb packager
	"github.com/goreleaser/nfpm/v2/files"
)

// binaries maps a Debian architecture to the binary `make cross` builds.
var binaries = map[string]string{
	"amd64": "edgegw-linux-amd64",
	"arm64": "edgegw-linux-arm64",
	"armhf": "edgegw-linux-armv7",
}

func main() {
	version := flag.String("version", "", "version (a git describe, such as v1.2.3 or v1.2.3-4-gabcdef)")
	root := flag.String("root", "../..", "the edgegw repository (systemd/, configs/)")
	dist := flag.String("dist", "../../dist", "where the binaries are and the packages go")
	archs := flag.String("arch", "amd64,arm64,armhf", "Debian architectures, comma-separated")
	flag.Parse()
	if *version == "" || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "usage: debpkg -version V [-root DIR] [-dist DIR] [-arch LIST]")
		os.Exit(2)
	}
	for _, arch := range strings.Split(*archs, ",") {
		path, err := build(*root, *dist, arch, debVersion(*version))
		if err != nil {
			fmt.Fprintln(os.Stderr, "debpkg:", err)
			os.Exit(1)
		}
		fmt.Println(path)
	}
}

// debVersion turns a git describe into a Debian version: v1.2.3 is 1.2.3,
// v1.2.3-4-gabcdef is 1.2.3.4.gabcdef (after 1.2.3, before 1.2.4), and a
// bare commit is 0.0.0~git.<commit> (before any release), also one that
// starts with a digit: only a dotted version is a release.
func debVersion(v string) string {
	v = strings.ReplaceAll(strings.TrimPrefix(v, "v"), "-", ".")
	if !release.MatchString(v) {
		v = "0.0.0~git." + v
	}
	return v
}

// release is how a tagged version starts: digits, a dot, a digit.
var release = regexp.MustCompile(`^[0-9]+\.[0-9]`)

func build(root, dist, arch, version string) (string, error) {
	bin, ok := binaries[arch]
	if !ok {
		return "", fmt.Errorf("unknown architecture %q (amd64, arm64, armhf)", arch)
	}
	// The binary itself, not a symlink to it: nfpm packages a symlink as
	// a symlink, which would point into the build machine's tree.
	bin, err := filepath.EvalSymlinks(filepath.Join(dist, bin))
	if err != nil {
		return "", fmt.Errorf("%w (make cross builds it)", err)
	}
	unit, err := packagedUnit(root, dist)
	if err != nil {
		return "", err
	}
	examples, err := filepath.Glob(filepath.Join(root, "configs", "*.yaml"))
	if err != nil || len(examples) == 0 {
		return "", fmt.Errorf("no example configs in %s/configs", root)
	}
	mode := func(m os.FileMode) *files.ContentFileInfo {
		return &files.ContentFileInfo{Mode: m, Owner: "root", Group: "root"}
	}
	contents := files.Contents{
		{Source: bin, Destination: "/usr/bin/edgegw", FileInfo: mode(0o755)},
		{Source: unit, Destination: "/lib/systemd/system/edgegw.service", FileInfo: mode(0o644)},
		{Destination: "/etc/edgegw", Type: files.TypeDir, FileInfo: mode(0o750)},
		{Source: filepath.Join(root, "configs", "plant-iothub.yaml"), Destination: "/etc/edgegw/edgegw.yaml",
			Type: files.TypeConfigNoReplace, FileInfo: mode(0o640)},
	}
	for _, e := range examples {
		contents = append(contents, &files.Content{Source: e,
			Destination: "/usr/share/doc/edgegw/examples/" + filepath.Base(e), FileInfo: mode(0o644)})
	}
	scripts := filepath.Join(root, "tools", "debpkg", "scripts")
	info := nfpm.WithDefaults(&nfpm.Info{
		Name:          "edgegw",
		Arch:          arch,
		Platform:      "linux",
		Version:       version,
		VersionSchema: "none",
		Section:       "net",
		Priority:      "optional",
		Maintainer:    "edgegw project <edgegw@users.noreply.github.com>",
		Homepage:      "https://github.com/edgegw/edgegw",
		Description: "edge protocol gateway to Azure IoT Hub or any MQTT broker\n" +
			"Collects data from MQTT devices, Modbus TCP/RTU, OPC UA servers and\n" +
			"serial sensors on a plant's LAN, keeps it durably on disk and forwards\n" +
			"it over one authenticated MQTT connection per device identity; commands\n" +
			"travel back.",
		MTime: time.Now().UTC().Truncate(time.Second),
		Overridables: nfpm.Overridables{
			Contents: contents,
			Scripts: nfpm.Scripts{
				PostInstall: filepath.Join(scripts, "postinst"),
				PreRemove:   filepath.Join(scripts, "prerm"),
				PostRemove:  filepath.Join(scripts, "postrm"),
			},
		},
	})
	if err := info.Validate(); err != nil {
		return "", err
	}
	p, err := nfpm.Get("deb")
	if err != nil {
		return "", err
	}
	out := filepath.Join(dist, p.ConventionalFileName(info))
	var buf bytes.Buffer
	if err := p.Package(info, &buf); err != nil {
		return "", fmt.Errorf("%s: %w", arch, err)
	}
	if err := os.WriteFile(out, buf.Bytes(), 0o644); err != nil {
		return "", err
	}
	return out, nil
}

// packagedUnit writes systemd/edgegw.service with the packaged binary's
// path (/usr/bin; the unit in the repository names /usr/local/bin, where a
// manual install puts it) and returns the copy's path.
func packagedUnit(root, dist string) (string, error) {
	b, err := os.ReadFile(filepath.Join(root, "systemd", "edgegw.service"))
	if err != nil {
		return "", err
	}
	const manual, packaged = "/usr/local/bin/edgegw", "/usr/bin/edgegw"
	if !bytes.Contains(b, []byte(manual)) {
		return "", errors.New("systemd/edgegw.service does not name " + manual)
	}
	b = bytes.ReplaceAll(b, []byte(manual), []byte(packaged))
	b = bytes.Replace(b, []byte("Install: see README.md, \"Install as a service\"."), []byte("Installed by the edgegw package."), 1)
	path := filepath.Join(dist, "edgegw.service")
	return path, os.WriteFile(path, b, 0o644)
}
