#!/usr/bin/env bash
# posture's admission webhook side by side with OPA v1.22 and with a no-op axum + rustls
# server, on the same AdmissionReview bodies, with the same load generator (wrk) and
# connections, on loopback; and the webhook's memory with a 10k-pod inventory.
#
#   bench/webhook_vs_opa.sh                 # 64 connections, 15 s x 3 rounds each
#   SECONDS_PER_RUN=30 ROUNDS=5 bench/webhook_vs_opa.sh
#   bench/webhook_vs_opa.sh --allocator-defaults   # without the chart's MIMALLOC_PURGE_DELAY=0
#
# Needs the control-plane binaries (make controlplane) and wrk (apt-get install wrk).
# OPA is built once from the Go module proxy into $POSTURE_CACHE/opa-<version>/.
set -euo pipefail
cd "$(dirname "$0")/.."
OPA_VERSION=v1.22.4
CACHE=${POSTURE_CACHE:-$HOME/.cache/posture}
TARGET=${CARGO_TARGET_DIR:-$PWD/target}

command -v wrk > /dev/null || { echo "wrk is needed: apt-get install wrk" >&2; exit 1; }
opa="$CACHE/opa-$OPA_VERSION/opa"
if [ ! -x "$opa" ]; then
  echo "building OPA $OPA_VERSION from the Go module proxy (about 2 minutes)" >&2
  GOBIN="$CACHE/opa-$OPA_VERSION" CGO_ENABLED=0 go install "github.com/open-policy-agent/opa@$OPA_VERSION"
fi
"$opa" version | head -1 >&2
e2e/controlplane/build.sh > /dev/null
# Release builds for all: the webhook and the benchmark (which serves the no-op).
cargo build --quiet --release -p posture --bin posture -p posture-e2e --bin bench-webhook
POSTURE_BIN="$TARGET/release/posture" "$TARGET/release/bench-webhook" --opa "$opa" \
  --seconds "${SECONDS_PER_RUN:-15}" --rounds "${ROUNDS:-3}" --connections "${CONNECTIONS:-64}" "$@"
