#!/usr/bin/env bash
# Honest throughput and peak memory under each resource flood (`sim --attack flood-*`), against
# the same run (same seed) without an attack. Kinds are interleaved within each repetition so
# that drift on a shared machine hits them alike; the table gives medians and ratios.
#
# Usage: testnet/bench/floods.sh [NODES] [JOBS] [REPS]     (defaults: 20 200 3)
set -euo pipefail
cd "$(dirname "$0")/../.."
nodes=${1:-20}
jobs=${2:-200}
reps=${3:-3}
cargo build --release -p cairn-testnet >&2
bin=target/release/cairn-testnet
kinds="none flood-calls flood-awards flood-blobs flood-sync flood-connections"
for rep in $(seq "$reps"); do
    for kind in $kinds; do
        args=(sim --nodes "$nodes" --jobs "$jobs" --json)
        if [ "$kind" != none ]; then args+=(--attack "$kind"); fi
        echo "rep $rep: $kind" >&2
        "$bin" "${args[@]}" 2>/dev/null | jq -c --arg kind "$kind" '{kind: $kind, accepted,
            submitted, wrongly_accepted, jobs_per_sec, peak_rss_bytes,
            sent: (.attack.requests_sent // 0), refused: (.attack.requests_refused // 0)}'
    done
done | python3 -c '
import json, statistics, sys
runs = [json.loads(line) for line in sys.stdin if line.strip()]
kinds = list(dict.fromkeys(r["kind"] for r in runs))
med = lambda kind, key: statistics.median(r[key] for r in runs if r["kind"] == kind)
base_jps, base_rss = med("none", "jobs_per_sec"), med("none", "peak_rss_bytes")
print("| attack | runs | accepted (min of submitted) | wrongly accepted | jobs/s (median) | vs none | peak memory MiB (median) | vs none | requests sent / refused (median) |")
print("|---|---|---|---|---|---|---|---|---|")
for k in kinds:
    rs = [r for r in runs if r["kind"] == k]
    jps, rss = med(k, "jobs_per_sec"), med(k, "peak_rss_bytes")
    accepted = min(r["accepted"] for r in rs)
    wrong = sum(r["wrongly_accepted"] for r in rs)
    sent, refused = med(k, "sent"), med(k, "refused")
    submitted = rs[0]["submitted"]
    print(f"| {k} | {len(rs)} | {accepted} of {submitted} | {wrong} | {jps:.1f} "
          f"| {jps / base_jps:.0%} | {rss / 2**20:.0f} | {rss / base_rss:.2f}x "
          f"| {sent:.0f} / {refused:.0f} |")
'
