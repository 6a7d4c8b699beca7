#!/usr/bin/env bash
# posture's AWS IAM analysis side by side with cloudsplaining on the same generated
# GetAccountAuthorizationDetails document: wall time and peak memory (medians), the
# ratios, and agreement on which principals can escalate their privileges.
#
#   bench/iam_vs_cloudsplaining.sh     # ROLES=5000 POLICIES=10000 USERS=400 IAM_GROUPS=120
#                                      # RUNS=3 (posture) CS_RUNS=1 (cloudsplaining)
#
# cloudsplaining (pinned) is installed into $POSTURE_CACHE/cloudsplaining-venv on first
# use. The posture release binary is not built here: the script waits for
# $CARGO_TARGET_DIR/release/posture to exist (make build, or cargo build --release).
#
# Input: the generated document has half of its policy documents URL-encoded (as the
# IAM API returns them) and half as JSON objects (as the AWS CLI prints them). posture
# reads that file. cloudsplaining cannot (it fails with "'str' object has no attribute
# 'get'" on the first URL-encoded document; its own `download` command stores the CLI
# form), so it reads the same document with every policy decoded (bench/iam_compare.py
# decode); posture is checked to give identical findings on both forms.
#
# Exclusions: cloudsplaining runs with an exclusions file that excludes nothing. Its
# default one skips the AdministratorAccess policy and roles and policies whose name or
# path starts with service-role / aws-service-role, which would hide principals posture
# judges (posture has no exclusions) and make "everything cloudsplaining flags, posture
# flags" easier to pass; EXCLUSIONS=default uses cloudsplaining's defaults instead.
set -euo pipefail
cd "$(dirname "$0")/.."
ROLES=${ROLES:-5000}
POLICIES=${POLICIES:-10000}
USERS=${USERS:-400}
IAM_GROUPS=${IAM_GROUPS:-120}
RUNS=${RUNS:-3}
CS_RUNS=${CS_RUNS:-1}
EXCLUSIONS=${EXCLUSIONS:-none}
CS_VERSION=0.9.1
CACHE=${POSTURE_CACHE:-$HOME/.cache/posture}
TARGET=${CARGO_TARGET_DIR:-$HOME/.cache/posture/target}

venv="$CACHE/cloudsplaining-venv"
if ! "$venv/bin/cloudsplaining" --version 2>/dev/null | grep -q "$CS_VERSION"; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "cloudsplaining==$CS_VERSION"
fi

bin="$TARGET/release/posture"
waited=0
until [ -x "$bin" ]; do
  [ "$waited" = 0 ] && echo "waiting for $bin (build it with: cargo build --release --bin posture)"
  sleep 10; waited=$((waited + 10))
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# A copy, so that a rebuild running in parallel cannot swap the binary between runs.
cp "$bin" "$work/posture"

python3 bench/gen_authorization_details.py "$work/authz.json" --roles "$ROLES" --policies "$POLICIES" \
  --users "$USERS" --groups "$IAM_GROUPS" --truth "$work/truth.json"
python3 bench/iam_compare.py decode "$work/authz.json" "$work/authz-cli.json"
echo "input: $(du -h "$work/authz.json" | cut -f1) raw ($(du -h "$work/authz-cli.json" | cut -f1) decoded for cloudsplaining)"

if [ "$EXCLUSIONS" = default ]; then
  exclusions=()
else
  printf 'policies: [""]\nroles: [""]\nusers: [""]\ngroups: [""]\n' > "$work/exclusions.yml"
  exclusions=(--exclusions-file "$work/exclusions.yml")
fi

# One run: prints "wall_seconds peak_kib cpu_seconds" (GNU time; cpu = user + system).
measure() {
  local out=$1; shift
  /usr/bin/time -f "%e %M %U %S" -o "$work/time" "$@" > "$out" 2> "$work/err" || {
    echo "failed: $*" >&2; tail -5 "$work/err" >&2; exit 1; }
  awk '{printf "%s %s %.2f\n", $1, $2, $3 + $4}' "$work/time"
}
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

: > "$work/posture.times"; : > "$work/cs.times"
for run in $(seq "$RUNS"); do
  measure "$work/posture.json" "$work/posture" scan --aws "$work/authz.json" --format json >> "$work/posture.times"
  echo "posture run $run: $(tail -n1 "$work/posture.times") (wall s, peak KiB, cpu s)"
done
"$work/posture" scan --aws "$work/authz-cli.json" --format json > "$work/posture-cli.json"
python3 - "$work/posture.json" "$work/posture-cli.json" <<'PY'
import json, sys
key = lambda f: (f["rule"], f["subject"]["id"], f["message"])
a, b = (sorted(map(key, json.load(open(p))["findings"])) for p in sys.argv[1:3])
if a != b:
    sys.exit("posture's findings differ between the URL-encoded and the decoded document")
print(f"posture: {len(a)} findings, identical on the URL-encoded and the decoded document")
PY

mkdir -p "$work/cs"
for run in $(seq "$CS_RUNS"); do
  measure "$work/cs.out" "$venv/bin/cloudsplaining" scan --input-file "$work/authz-cli.json" \
    "${exclusions[@]}" --output "$work/cs" --skip-open-report >> "$work/cs.times"
  echo "cloudsplaining run $run: $(tail -n1 "$work/cs.times") (wall s, peak KiB, cpu s)"
done

col() { cut -d' ' -f"$1" "$2" | median; }
python3 - "$(col 1 "$work/posture.times")" "$(col 2 "$work/posture.times")" "$(col 3 "$work/posture.times")" \
  "$(col 1 "$work/cs.times")" "$(col 2 "$work/cs.times")" "$(col 3 "$work/cs.times")" "$RUNS" "$CS_RUNS" "$CS_VERSION" <<'PY'
import sys
pt, pm, pc, ct, cm, cc = (float(x) for x in sys.argv[1:7])
runs, cs_runs, version = sys.argv[7:10]
speed = ct / max(pt, 0.001)
print()
print("| tool | wall time (median) | CPU time, user + system (median) | peak RSS (median) |")
print("| --- | --- | --- | --- |")
print(f"| posture scan --aws (median of {runs}) | {pt:.2f} s | {pc:.2f} s | {pm / 1024:.0f} MB |")
print(f"| cloudsplaining {version} scan (median of {cs_runs}) | {ct:.1f} s | {cc:.1f} s | {cm / 1024:.0f} MB |")
print(f"| ratio | {speed:.0f}x faster (target >= 200x: {'met' if speed >= 200 else 'NOT met'}) "
      f"| {cc / max(pc, 0.001):.0f}x less CPU "
      f"| {cm / max(pm, 1):.1f}x less (target < 300 MB: {'met' if pm / 1024 < 300 else 'NOT met'}) |")
print()
PY

results=$(ls "$work"/cs/iam-results-*.json)
"$venv/bin/python" bench/iam_compare.py compare --authz "$work/authz.json" --posture "$work/posture.json" \
  --cloudsplaining "$results" --truth "$work/truth.json" --methods config/iam-escalation.yaml \
  --details "${DETAILS:-/dev/null}"
