#!/usr/bin/env bash
# Installs what the test suite needs and a fresh Debian machine lacks:
# mosquitto (generic upstream broker) and mosquitto-clients, socat (pty pairs
# for serial and Modbus RTU), gcc with libmodbus-dev (a third-party RTU slave),
# chromium (the local page's tests), prometheus (its promtool lints /metrics),
# qemu-user-static (the ARM builds run under it), the official Azure IoT
# Node SDKs that check hubsim, and node-opcua (the OPC UA test server of
# southbound/opcua). Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need+=(mosquitto)
command -v mosquitto_pub >/dev/null 2>&1 || need+=(mosquitto-clients)
command -v socat >/dev/null 2>&1 || need+=(socat)
command -v gcc >/dev/null 2>&1 || need+=(gcc)
# gcc without recommends lacks the C library headers that cgo (go test -race)
# and the libmodbus test slave compile against.
dpkg -s libc6-dev >/dev/null 2>&1 || need+=(libc6-dev)
dpkg -s libmodbus-dev >/dev/null 2>&1 || need+=(libmodbus-dev)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
# qemu-user-static runs the armv7 and arm64 builds (static binaries) here.
command -v qemu-arm-static >/dev/null 2>&1 && command -v qemu-aarch64-static >/dev/null 2>&1 || need+=(qemu-user-static)
if [ ${#need[@]} -gt 0 ]; then
  echo "deps: installing Debian packages: ${need[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}"
  # Debian starts the mosquitto service on install, on 127.0.0.1:1883, where
  # the quickstart's LAN broker listens; the tests start their own brokers.
  if printf '%s\n' "${need[@]}" | grep -qx mosquitto && command -v systemctl >/dev/null 2>&1; then
    $sudo systemctl disable --now mosquitto >/dev/null 2>&1 || true
  fi
  # Likewise the prometheus service (on :9090): only its promtool is wanted.
  if printf '%s\n' "${need[@]}" | grep -qx prometheus && command -v systemctl >/dev/null 2>&1; then
    $sudo systemctl disable --now prometheus >/dev/null 2>&1 || true
  fi
fi

if [ -f hubsim/sdktest/package.json ]; then
  if [ ! -d hubsim/sdktest/node_modules ] || [ hubsim/sdktest/package-lock.json -nt hubsim/sdktest/node_modules ]; then
    echo "deps: installing the Azure IoT Node SDKs (npm ci)"
    npm ci --prefix hubsim/sdktest --no-audit --no-fund --loglevel=error
  fi
fi
if [ -f southbound/opcua/testdata/package.json ]; then
  if [ ! -d southbound/opcua/testdata/node_modules ] || [ southbound/opcua/testdata/package-lock.json -nt southbound/opcua/testdata/node_modules ]; then
    echo "deps: installing node-opcua (npm ci)"
    npm ci --prefix southbound/opcua/testdata --no-audit --no-fund --loglevel=error
  fi
fi
