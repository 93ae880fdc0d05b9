#!/usr/bin/env bash
# In the VM: bash ci/softroce.sh bench/smb2-client.sh   (run `npx tsc -p tsconfig.json` first)
# Our SMB3 client next to the kernel's cifs client, both against ksmbd over SMB Direct on rxe0 and
# siw0 in this boot (bench/smb2-client.ts). JSON lands in $VMOUT/bench-results/smb2-client.json.
set -uo pipefail
mkdir -p "$VMOUT/bench-results"
BENCH_RESULTS_DIR=$VMOUT/bench-results timeout -k 10 900 "${SOFTROCE_NODE:-node}" dist/bench/smb2-client.js \
  --size-mib "${SOFTROCE_BENCH_SMB2_MIB:-64}" --reps "${SOFTROCE_BENCH_SMB2_REPS:-2}"
