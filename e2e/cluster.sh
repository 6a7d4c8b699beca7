#!/usr/bin/env bash
# Starts or stops the local cluster in the background (used by `make cluster-up` and
# `make cluster-down`).
#
#   e2e/cluster.sh up   PATH/TO/posture-cluster .dev
#   e2e/cluster.sh down ""                      .dev
set -euo pipefail
action=$1 binary=$2 dev=$3
pidfile="$dev/cluster.pid"

running() { [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }

case "$action" in
up)
  mkdir -p "$dev"
  if running; then
    echo "the cluster is already running (pid $(cat "$pidfile")); KUBECONFIG=$dev/kubeconfig"
    exit 0
  fi
  rm -f "$dev/ready"
  # setsid: the cluster outlives this shell and make; its components stop with it.
  setsid nohup "$binary" up --dev-dir "$dev" > "$dev/cluster.log" 2>&1 < /dev/null &
  echo $! > "$pidfile"
  for _ in $(seq 1 900); do
    [ -f "$dev/ready" ] && { tail -n 6 "$dev/cluster.log"; exit 0; }
    if ! running; then
      echo "the cluster failed to start:" >&2
      tail -n 40 "$dev/cluster.log" >&2
      exit 1
    fi
    sleep 0.2
  done
  echo "the cluster was not ready after 180 s; see $dev/cluster.log" >&2
  exit 1
  ;;
down)
  if ! running; then
    echo "no cluster is running"
    rm -f "$pidfile"
    exit 0
  fi
  pid=$(cat "$pidfile")
  kill -TERM "$pid"
  for _ in $(seq 1 300); do
    kill -0 "$pid" 2>/dev/null || { rm -f "$pidfile"; echo "cluster stopped"; exit 0; }
    sleep 0.1
  done
  echo "the cluster did not stop in 30 s; killing it (its components stop with it)" >&2
  kill -KILL "$pid" 2>/dev/null || true
  rm -f "$pidfile"
  ;;
*)
  echo "usage: $0 up|down BINARY DEV_DIR" >&2
  exit 2
  ;;
esac
