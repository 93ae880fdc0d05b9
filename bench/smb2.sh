#!/usr/bin/env bash
# In the VM: bash ci/softroce.sh bench/smb2.sh   (run `npx tsc -p tsconfig.json` first)
# Our SMB3 server next to the kernel's ksmbd, both through the kernel cifs client over SMB Direct on
# rxe0 and siw0 in this boot (bench/smb2.ts). JSON lands in $VMOUT/bench-results/smb2.json.
set -uo pipefail
mkdir -p "$VMOUT/bench-results"
BENCH_RESULTS_DIR=$VMOUT/bench-results timeout -k 10 900 "${SOFTROCE_NODE:-node}" dist/bench/smb2.js \
  --size-mib "${SOFTROCE_BENCH_SMB2_MIB:-64}" --files "${SOFTROCE_BENCH_SMB2_FILES:-200}" --reps "${SOFTROCE_BENCH_SMB2_REPS:-2}"
