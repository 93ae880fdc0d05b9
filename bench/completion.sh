#!/usr/bin/env bash
# In the VM: npx tsc -p tsconfig.json && bash ci/softroce.sh bench/completion.sh
# node dist/bench/completion.js, which runs `ib_send_bw -s 64` (bench/perftest-send.sh) before each
# of its repetitions in this boot; the JSON lands in $VMOUT/bench-results/completion.json (copy it
# to bench/results/ on the host). Env: SOFTROCE_BENCH_MSGS (40000), BENCH_REPS (3).
set -uo pipefail
source ci/guest/lib.sh
mkdir -p "$VMOUT/bench-results"
BENCH_RESULTS_DIR=$VMOUT/bench-results PERFTEST_SCRIPT=bench/perftest-send.sh \
  timeout -k 10 480 "${SOFTROCE_NODE:-node}" dist/bench/completion.js
