#!/usr/bin/env bash
# Runs INSIDE the VM: creates rxe0/siw0, then runs the compiled soft-RoCE tests (arguments: test
# files relative to the repo, compiled on the host before boot) with node's test runner, one file
# at a time (they share the devices and compare kernel resource counts). Spec output goes to the
# console, TAP to $VMOUT/results.tap.
# Exit: node's code; 3 device missing, 4 no node/repo, 5 no test file, 124 run bound hit.
set -uo pipefail
source "${BASH_SOURCE[0]%/*}/lib.sh"

setup_devices || exit 3
NODE=${SOFTROCE_NODE:?}
[ -x "$NODE" ] || { glog "node not found at $NODE inside the VM"; exit 4; }
cd "${SOFTROCE_REPO:?}" || exit 4
[ $# -gt 0 ] || { glog "no test files given"; exit 5; }
for f in "$@"; do [ -f "$f" ] || { glog "test file $f missing"; exit 5; }; done

if [ -n "${SMBDIRECT_ASAN_RUNTIME:-}" ]; then
  # node itself is not instrumented: preload the runtime; node's own exit-time leaks are not ours
  export LD_PRELOAD=$SMBDIRECT_ASAN_RUNTIME
  export ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:halt_on_error=1:print_summary=1
  glog "AddressSanitizer: $SMBDIRECT_NATIVE_ADDON with $LD_PRELOAD"
fi
glog "$# test file(s), per-test timeout ${SOFTROCE_TEST_TIMEOUT_MS}ms, whole run bounded to ${SOFTROCE_GUEST_TEST_TIMEOUT}s"
t0=$EPOCHREALTIME
timeout -k 10 "$SOFTROCE_GUEST_TEST_TIMEOUT" "$NODE" --test --test-concurrency=1 \
  --test-timeout="$SOFTROCE_TEST_TIMEOUT_MS" \
  --test-reporter=spec --test-reporter-destination=stdout \
  --test-reporter=tap --test-reporter-destination="$VMOUT/results.tap" \
  "$@"
rc=$?
ms_since "$t0" ms
if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then echo "SOFTROCE-TEST-TIMEOUT after ${SOFTROCE_GUEST_TEST_TIMEOUT}s"; fi
glog "node --test exit $rc after ${ms}ms"
exit $rc
