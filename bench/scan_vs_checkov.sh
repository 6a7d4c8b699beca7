#!/usr/bin/env bash
# posture scan side by side with checkov on the same generated corpus of manifests:
# wall time and peak memory (median of RUNS runs each), and the ratios.
#
#   bench/scan_vs_checkov.sh            # COUNT=5000 files, RUNS=3 (posture), CHECKOV_RUNS=RUNS
#   CHECKOV_RUNS=1 bench/scan_vs_checkov.sh   # checkov takes minutes per run
#
# checkov is installed into $POSTURE_CACHE/checkov-venv on first use (pinned).
set -euo pipefail
cd "$(dirname "$0")/.."
COUNT=${COUNT:-5000}
RUNS=${RUNS:-3}
CHECKOV_RUNS=${CHECKOV_RUNS:-$RUNS}
CACHE=${POSTURE_CACHE:-$HOME/.cache/posture}
TARGET=${CARGO_TARGET_DIR:-$PWD/target}

venv="$CACHE/checkov-venv"
if [ ! -x "$venv/bin/checkov" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check checkov==3.3.30
fi
cargo build --quiet --release --bin posture

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 bench/gen_manifests.py "$work/corpus" "$COUNT"
objects=$(grep -c '^kind:' -r "$work/corpus" | awk -F: '{s+=$2} END {print s}')
echo "corpus: $COUNT files, $objects objects"

# One run: prints "seconds peak_kib" (GNU time; the peak is the largest process).
measure() {
  /usr/bin/time -f "%e %M" -o "$work/time" "$@" > "$work/out" 2> "$work/err" || true
  tail -n1 "$work/time"
}

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

: > "$work/posture"; : > "$work/checkov"
for run in $(seq "$RUNS"); do
  measure "$TARGET/release/posture" scan "$work/corpus" --format json >> "$work/posture"
  posture_findings=$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["findings"]))' "$work/out")
  echo "posture run $run: $(tail -n1 "$work/posture") (s, KiB; $posture_findings findings)"
  if [ "$run" -le "$CHECKOV_RUNS" ]; then
    measure "$venv/bin/checkov" -d "$work/corpus" --framework kubernetes --quiet --compact --skip-download -o json >> "$work/checkov"
    checkov_failed=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); d=d if isinstance(d,list) else [d]; print(sum(r["summary"]["failed"] for r in d))' "$work/out")
    echo "checkov run $run: $(tail -n1 "$work/checkov") (s, KiB; $checkov_failed failed checks)"
  fi
done

p_time=$(cut -d' ' -f1 "$work/posture" | median); p_mem=$(cut -d' ' -f2 "$work/posture" | median)
c_time=$(cut -d' ' -f1 "$work/checkov" | median); c_mem=$(cut -d' ' -f2 "$work/checkov" | median)
python3 - "$p_time" "$p_mem" "$c_time" "$c_mem" "$RUNS" "$CHECKOV_RUNS" <<'PY'
import sys
pt, pm, ct, cm, runs, cruns = float(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), sys.argv[5], sys.argv[6]
print(f"| tool | wall time (median; posture {runs} runs, checkov {cruns}) | peak memory |")
print("| --- | --- | --- |")
print(f"| posture scan | {pt:.2f} s | {pm / 1024:.0f} MB |")
print(f"| checkov 3.3.30 | {ct:.1f} s | {cm / 1024:.0f} MB |")
print(f"| ratio | {ct / max(pt, 0.001):.0f}x faster | {cm / max(pm, 1):.1f}x less |")
PY
