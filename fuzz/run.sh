#!/usr/bin/env bash
# Runs every fuzz target for SECONDS (default 600) each, from its seed corpus, and
# prints libFuzzer's summary: the figures BENCHMARKS.md records.
#
#   fuzz/run.sh            # 10 minutes per target
#   SECONDS_PER_TARGET=60 fuzz/run.sh
#
# Needs the nightly toolchain and cargo-fuzz (cargo install cargo-fuzz).
set -euo pipefail
cd "$(dirname "$0")"
seconds=${SECONDS_PER_TARGET:-600}
for target in manifests admission; do
  mkdir -p "corpus/$target"
  if ! cargo +nightly fuzz build "$target" > "/tmp/posture-fuzz-build-$target.log" 2>&1; then
    grep -E "^error|SIGKILL" "/tmp/posture-fuzz-build-$target.log" | cut -c1-300 >&2
    echo "building $target failed (full log: /tmp/posture-fuzz-build-$target.log)" >&2
    exit 2
  fi
  echo "== $target, $seconds s"
  cargo +nightly fuzz run "$target" "corpus/$target" "seeds/$target" -- \
    -max_total_time="$seconds" -print_final_stats=1 2>&1 \
    | grep -E "^(#[0-9]+ +DONE|Done|stat::number_of_executed_units|stat::peak_rss_mb|stat::new_units_added|==[0-9]+== ERROR|SUMMARY)" || true
  if ls "artifacts/$target"/crash-* > /dev/null 2>&1; then
    echo "CRASH: see fuzz/artifacts/$target/"; exit 1
  fi
done
