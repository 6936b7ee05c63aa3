#!/usr/bin/env bash
# Runs a command with a Docker daemon available. If none answers and we are root,
# starts `dockerd --bridge=none --iptables=false` for the command's lifetime and
# stops it afterwards. In CI (CI=true) a daemon that cannot be had is an error.
set -uo pipefail
started=""
log=${SWERVE_DOCKERD_LOG:-/tmp/swerve-dockerd.log}

daemon_up() { docker version --format '{{.Server.Version}}' >/dev/null 2>&1 || \
  python3 -c 'import socket,sys; s=socket.socket(socket.AF_UNIX); s.connect("/var/run/docker.sock")' >/dev/null 2>&1; }

stop_daemon() {
  if [ -n "$started" ]; then
    kill "$started" 2>/dev/null
    for _ in $(seq 1 30); do kill -0 "$started" 2>/dev/null || break; sleep 1; done
    kill -9 "$started" 2>/dev/null || true
  fi
}

if ! daemon_up; then
  if [ "$(id -u)" -eq 0 ] && command -v dockerd >/dev/null 2>&1; then
    echo "swerve: starting dockerd --bridge=none --iptables=false (log: $log)"
    dockerd --bridge=none --iptables=false >"$log" 2>&1 &
    started=$!
    trap stop_daemon EXIT
    trap 'stop_daemon; exit 130' INT TERM
    for _ in $(seq 1 60); do daemon_up && break; sleep 1; done
  fi
fi
if ! daemon_up; then
  if [ "${CI:-}" = "true" ]; then
    echo "swerve: no Docker daemon answers and none could be started (see $log); CI needs one" >&2
    exit 1
  fi
  echo "swerve: no Docker daemon; docker tests will be skipped and the local backend used" >&2
fi
"$@"
rc=$?
exit $rc
