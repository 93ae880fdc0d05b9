#!/usr/bin/env bash
# Real RDMA tests in a qemu VM: soft-RoCE (rxe0) and soft-iWARP (siw0) on Debian's own 6.1 kernel.
# Usage: ci/softroce.sh [test]              compile on the host, run test/softroce/*.test.ts in the VM
#        ci/softroce.sh bench               every VM benchmark: perftest, bench/verbs, completion, smbdirect, smb2 (ours vs ksmbd)
#        ci/softroce.sh <script.sh> [args]  run any bash script in the VM (devices already created)
# Steps: host packages (ci/setup-host.sh), VM image (ci/build-vm.sh, cached in ci/cache/), native
# addon + TypeScript build (host), boot (ci/run-vm.sh), then checks: the VM booted, rxe0/siw0 came up,
# tests ran and passed. Last line: "SOFTROCE PASS: ..." or "SOFTROCE FAIL: <reason>" (exit 1).
# Env: SOFTROCE_TIMEOUT (VM watchdog s: test 2700, bench 1500, script 540), SOFTROCE_TESTS (globs, test/softroce/*.test.ts),
# SOFTROCE_TEST_TIMEOUT_MS (per test and per file, 1200000), SOFTROCE_SMP (2), SOFTROCE_MEM (2G),
# SOFTROCE_KPKG (pin the kernel package), SOFTROCE_KEEP_RUNS (10), SOFTROCE_ASAN (1: the addon
# built with AddressSanitizer). See ci/README.md.
set -euo pipefail
shopt -s extglob   # +([0-9]) patterns in the TAP checks

CI=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$CI/.." && pwd)
CACHE=${SOFTROCE_CACHE:-$CI/cache}
export SOFTROCE_CACHE=$CACHE
T0=$EPOCHREALTIME

elapsed() { local d=$(( ${EPOCHREALTIME/./} - ${T0/./} )); printf '%d.%d' $((d / 1000000)) $((d % 1000000 / 100000)); }
step() { printf '\n== softroce: %s (%ss)\n' "$*" "$(elapsed)"; }
fail() { printf '\nSOFTROCE FAIL: %s\n' "$*"; exit 1; }
trap 'printf "\nSOFTROCE FAIL: interrupted\n"; exit 130' INT TERM

MODE=${1:-test}
[ $# -gt 0 ] && shift
case $MODE in
  -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  test|bench) ;;
  *) [ -f "$MODE" ] || fail "usage: ci/softroce.sh [test|bench|<script.sh> [args]] ('$MODE' is not a file)" ;;
esac

# bench mode runs every VM benchmark (perftest, verbs, completion queues, SMB Direct, SMB3 vs ksmbd): ~9 min;
# the test suite ~25 min, a quarter of it the soak (test/softroce/soak.test.ts, 1000 cycles per device)
TIMEOUT=${SOFTROCE_TIMEOUT:-$(case $MODE in bench) echo 1500 ;; test) echo 2700 ;; *) echo 540 ;; esac)}
# node 20's --test-timeout bounds each test file as a whole too, not only each test: the soak file
# runs ~10 min. Tests bound their own waits (deadlines that name what hung).
TEST_TIMEOUT_MS=${SOFTROCE_TEST_TIMEOUT_MS:-1200000}
# the node run is bounded inside the guest, leaving time for boot, device setup and poweroff
GUEST_TEST_TIMEOUT=$((TIMEOUT > 120 ? TIMEOUT - 60 : TIMEOUT / 2))
export SOFTROCE_TIMEOUT=$TIMEOUT

# the guest sees the host's / read-only, except /tmp, /run and /var/tmp, which are fresh tmpfs
hidden_in_vm() { case "$1/" in /tmp/*|/run/*|/var/tmp/*|/dev/*|/proc/*|/sys/*) return 0 ;; esac; return 1; }
hidden_in_vm "$REPO" && fail "the repository is at $REPO, which the VM replaces with an empty tmpfs: clone it elsewhere"

step "host packages"
bash "$CI/setup-host.sh" || fail "host packages missing (see above; ci/setup-host.sh installs them as root)"

step "VM image (kernel, siw, initramfs; cached in ${CACHE#"$REPO/"})"
bash "$CI/build-vm.sh" || fail "building the VM image failed (ci/build-vm.sh, see above)"

NODE=$(command -v node) || fail "node is not on PATH"
NODE=$(readlink -f "$NODE")   # the real file: symlinks may point into places the VM hides
hidden_in_vm "$NODE" && fail "node is at $NODE, which the VM cannot see (tmpfs there): install node elsewhere"

# the run directory: console log, and out/ = the guest's writable share /run/vmout
mkdir -p "$CACHE/runs"
RUN=$CACHE/runs/$(date +%Y%m%d-%H%M%S)-${MODE##*/}-$$
mkdir -p "$RUN/out"
ln -sfn "runs/${RUN##*/}" "$CACHE/last"
# keep the newest SOFTROCE_KEEP_RUNS run directories
mapfile -t old < <(ls -1d "$CACHE"/runs/*/ 2>/dev/null | sort | head -n -"${SOFTROCE_KEEP_RUNS:-10}")
[ ${#old[@]} -eq 0 ] || rm -rf "${old[@]}"

if [ -f "$REPO/binding.gyp" ] && [ "${SOFTROCE_NATIVE_BUILD:-1}" = 1 ]; then
  # the VM loads the addon built here. `npm ci` may have built the no-rdma-core stub before
  # setup-host installed libibverbs-dev, and sources may have changed since: build incrementally,
  # reconfigure when binding.gyp is newer or the stub was built. npm exec passes npm's config
  # (e.g. nodedir) to node-gyp like `npm run` does.
  step "native addon (node-gyp; SOFTROCE_NATIVE_BUILD=0 skips)"
  if [ -f "$REPO/build/Makefile" ] && [ "$REPO/build/Makefile" -nt "$REPO/binding.gyp" ] \
     && ! grep -qs 'native/stub\.o' "$REPO"/build/*.target.mk; then
    gyp=(build)
  else
    gyp=(rebuild)
  fi
  (cd "$REPO" && timeout 900 npm exec --no -- node-gyp "${gyp[@]}" -j max 2>&1 | { grep -v '^gyp info' || true; }) \
    || fail "native addon build failed (node-gyp ${gyp[*]}, see above)"
  grep -qs 'native/stub\.o' "$REPO"/build/*.target.mk \
    && fail "the native addon was built as the no-rdma-core stub (pkg-config cannot find libibverbs/librdmacm)"
fi

if [ "${SOFTROCE_ASAN:-0}" = 1 ]; then
  # The same sources built with AddressSanitizer in ci/cache/asan/, loaded in the VM through
  # SMBDIRECT_NATIVE_ADDON with the ASan runtime preloaded into node (a use-after-close or an
  # overrun in the addon aborts the test process with a report instead of passing silently).
  step "native addon with AddressSanitizer (SOFTROCE_ASAN=1)"
  ASAN_DIR=$CACHE/asan
  rm -rf "$ASAN_DIR" && mkdir -p "$ASAN_DIR"
  cp -r "$REPO/binding.gyp" "$REPO/native" "$ASAN_DIR/"
  ln -s "$REPO/node_modules" "$ASAN_DIR/node_modules"
  (cd "$ASAN_DIR" && CXXFLAGS="-fsanitize=address -fno-omit-frame-pointer -g" LDFLAGS="-fsanitize=address" \
    timeout 900 "$REPO/node_modules/.bin/node-gyp" rebuild -j max --nodedir="$(npm config get nodedir 2>/dev/null || echo /usr)" \
    2>&1 | { grep -v '^gyp info' || true; }) || fail "ASan build of the native addon failed"
  export SMBDIRECT_NATIVE_ADDON=$ASAN_DIR/build/Release/smbdirect_native.node
  export SMBDIRECT_ASAN_RUNTIME; SMBDIRECT_ASAN_RUNTIME=$(gcc -print-file-name=libasan.so)
  [ -f "$SMBDIRECT_NATIVE_ADDON" ] && [ -f "$SMBDIRECT_ASAN_RUNTIME" ] || fail "ASan addon or runtime missing"
fi

args=()
if [ "$MODE" = test ] || [ "$MODE" = bench ]; then
  step "TypeScript build on the host (tests and benches included; no tsx in the slow guest)"
  [ -x "$REPO/node_modules/.bin/tsc" ] || fail "node_modules/.bin/tsc missing: run npm ci first"
  (cd "$REPO" && timeout 300 node_modules/.bin/tsc -p tsconfig.json) \
    || fail "TypeScript build failed (tsc -p tsconfig.json, see above)"
fi
case $MODE in
  test)
    GUEST=$CI/guest/test.sh
    # space-separated globs, expanded relative to the repo (read -a does not glob here)
    read -ra pats <<< "${SOFTROCE_TESTS:-test/softroce/*.test.ts}"
    for pat in "${pats[@]}"; do
      mapfile -t srcs < <(cd "$REPO" && compgen -G "$pat" | LC_ALL=C sort)
      for src in "${srcs[@]}"; do
        case $src in
          *.ts) js=dist/${src%.ts}.js ;;
          *.js) js=$src ;;
          *) continue ;;
        esac
        [ -f "$REPO/$js" ] || fail "$src compiled to nothing ($js missing; is it in tsconfig.json's include?)"
        args+=("$js")
      done
    done
    [ ${#args[@]} -gt 0 ] || fail "no test ran: no test file matches '${SOFTROCE_TESTS:-test/softroce/*.test.ts}'"
    echo "test files: ${args[*]}"
    ;;
  bench)
    GUEST=$CI/guest/bench.sh
    ;;
  *)
    GUEST=$CI/guest/run-script.sh
    cp "$MODE" "$RUN/out/user-script.sh"
    args=("$@")
    ;;
esac

# start.sh: what the guest's /init runs (host paths are valid inside: the host / is the guest /)
{
  echo "# generated by ci/softroce.sh; run by the VM's /init"
  printf 'export SOFTROCE_IN_VM=1 SOFTROCE_REPO=%q SOFTROCE_NODE=%q SOFTROCE_MODE=%q\n' "$REPO" "$NODE" "$MODE"
  printf 'export SOFTROCE_SCRIPT_NAME=%q\n' "${MODE##*/}"
  # the unpacked kernel tree (its lib/modules holds cifs/ksmbd with SMB Direct: ci/guest/kernel-smb.sh)
  printf 'export SOFTROCE_KROOT=%q\n' "$(cat "$CACHE/current")/root"
  printf 'export SOFTROCE_TEST_TIMEOUT_MS=%q SOFTROCE_GUEST_TEST_TIMEOUT=%q\n' "$TEST_TIMEOUT_MS" "$GUEST_TEST_TIMEOUT"
  printf 'export PATH=%q:"$PATH"\n' "${NODE%/*}"
  # pass-through knobs (the guest starts from an empty environment); the device variables
  # SMBDIRECT_SOFTROCE/_RXE_*/_SIW_*/_VMOUT are set in the guest and win
  for v in $(compgen -e); do
    case $v in SOFTROCE_BENCH_*|SMBDIRECT_*|NODE_OPTIONS|NODE_DEBUG) printf 'export %s=%q\n' "$v" "${!v}" ;; esac
  done
  printf 'exec /bin/bash %q' "$GUEST"
  [ ${#args[@]} -eq 0 ] || printf ' %q' "${args[@]}"
  echo
} > "$RUN/out/start.sh"

step "boot VM (TCG; watchdog ${TIMEOUT}s; log ${RUN#"$REPO/"}/console.log)"
set +e
bash "$CI/run-vm.sh" "$RUN"
vrc=$?
set -e
OUT=$RUN/out
LOG=$RUN/console.log
read -r vmsecs < "$RUN/vm-seconds" 2>/dev/null || vmsecs='?'

step "checks"
read -r qrc < "$RUN/qemu-rc" 2>/dev/null || qrc='?'
booted=no; grep -q 'SOFTROCE-BOOT' "$LOG" && booted=yes
if [ "$qrc" = 124 ] || [ "$qrc" = 137 ]; then
  fail "watchdog: qemu killed after ${TIMEOUT}s (SOFTROCE_TIMEOUT; VM booted: $booted); see $LOG"
fi
[ $booted = yes ] || fail "the VM did not boot (no SOFTROCE-BOOT marker on the console; qemu exit $(cat "$RUN/qemu-rc" 2>/dev/null)); see $LOG"
boot=$(sed -n 's/^\[ *\([0-9.]*\)\] SOFTROCE-GUEST-START.*/\1/p' "$LOG" | head -1)
echo "VM booted: guest script started ${boot:-?}s after qemu start; VM ran ${vmsecs}s"
if grep -q 'SOFTROCE-INIT-FAIL' "$LOG"; then fail "VM init: $(sed -n 's/.*SOFTROCE-INIT-FAIL: //p' "$LOG" | head -1)"; fi
grep 'SOFTROCE-INSMOD-FAIL' "$LOG" || true
if grep -q 'SOFTROCE-WATCHDOG' "$LOG" || [ $vrc -eq 124 ]; then
  grep -q 'SOFTROCE-TEST-TIMEOUT' "$LOG" \
    && fail "the test run hit its ${GUEST_TEST_TIMEOUT}s bound inside the VM (watchdog)"
  fail "watchdog: $(sed -n 's/.*SOFTROCE-WATCHDOG: //p' "$LOG" | head -1) (SOFTROCE_TIMEOUT=${TIMEOUT}s)"
fi
[ $vrc -ne 99 ] || fail "the guest left no exit code (kernel panic or crash?); see $LOG"
if [ -f "$OUT/devices-missing" ] || [ $vrc -eq 3 ]; then
  fail "RDMA device missing in the VM: $(cat "$OUT/devices-missing" 2>/dev/null || echo "guest exit 3")"
fi
if [ ! -f "$OUT/devices" ] || ! grep -q 'SOFTROCE-DEVICES' "$LOG"; then
  fail "rxe0/siw0 not confirmed by the guest (guest exit $vrc)"
fi
echo "devices: $(sed -n 's/.*SOFTROCE-DEVICES //p' "$LOG" | head -1)"

case $MODE in
  test)
    TAP=$OUT/results.tap
    [ -s "$TAP" ] || fail "no test ran (no TAP output; guest exit $vrc)"
    tapn() { sed -n "s/^# $1 \([0-9]*\)\$/\1/p" "$TAP" | tail -1; }
    n=$(tapn tests); pass=$(tapn pass); nfail=$(tapn fail)
    cancelled=$(tapn cancelled); skipped=$(tapn skipped); todo=$(tapn todo)
    echo "TAP ${TAP#"$REPO/"}: tests ${n:-?} pass ${pass:-?} fail ${nfail:-?} cancelled ${cancelled:-?} skipped ${skipped:-?} todo ${todo:-?}"
    [ -n "$n" ] || fail "no test summary in the TAP output (node --test interrupted?; guest exit $vrc)"
    [ "$n" -gt 0 ] || fail "no test ran (# tests 0)"
    # node 20 reports a file that defines no test as one passing "test" named by its path
    empty=()
    while IFS= read -r line; do
      for js in "${args[@]}"; do
        [[ $line == "ok "+([0-9])" - $REPO/$js" ]] && empty+=("$js")
      done
    done < "$TAP"
    [ ${#empty[@]} -eq 0 ] || fail "no test ran in ${empty[*]} (the file defines no test)"
    [ "${nfail:-1}" -eq 0 ] || fail "$nfail of $n tests failed"
    [ "${cancelled:-0}" -eq 0 ] || fail "$cancelled of $n tests cancelled (timeout?)"
    [ $vrc -eq 0 ] || fail "guest exit code $vrc although the TAP summary shows no failure"
    printf '\nSOFTROCE PASS: %d tests (%d skipped, %d todo) in %s s (VM %s s)\n' \
      "$n" "${skipped:-0}" "${todo:-0}" "$(elapsed)" "$vmsecs"
    ;;
  bench)
    [ -s "$OUT/perftest.json" ] || fail "bench: no perftest.json from the guest (guest exit $vrc)"
    node -e '
      const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
      console.log("perftest in this boot (device tool size: Gb/s | usec typical)");
      for (const x of r) console.log(`  ${x.device.padEnd(5)} ${(x.tool + (x.rdma_cm ? " -R" : "")).padEnd(15)} ${String(x.size).padStart(7)} B: ` +
        (x.gbps !== undefined ? `${x.gbps} Gb/s` : `${x.usec} us`) + (x.ok === false ? "  FAILED" : ""));
      ' "$OUT/perftest.json" || fail "bench: perftest.json is not valid JSON"
    copied=()
    if [ -d "$OUT/bench-results" ]; then
      mkdir -p "$REPO/bench/results"
      for f in "$OUT"/bench-results/*.json; do
        [ -f "$f" ] || continue
        cp "$f" "$REPO/bench/results/" && copied+=("bench/results/${f##*/}")
      done
    fi
    [ ${#copied[@]} -eq 0 ] || echo "copied to the repo: ${copied[*]}"
    [ $vrc -eq 0 ] || fail "bench: guest exit code $vrc (see $LOG)"
    printf '\nSOFTROCE PASS: bench, %s perftest runs in %s s (VM %s s)\n' \
      "$(grep -o '"tool"' "$OUT/perftest.json" | wc -l)" "$(elapsed)" "$vmsecs"
    ;;
  *)
    [ $vrc -eq 0 ] || fail "${MODE##*/} exited $vrc in the VM"
    printf '\nSOFTROCE PASS: %s exited 0 in %s s (VM %s s)\n' "${MODE##*/}" "$(elapsed)" "$vmsecs"
    ;;
esac
