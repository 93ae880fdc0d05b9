#!/usr/bin/env bash
# Runs INSIDE the VM: perftest references on rxe0 (RC, GID exchange over TCP) and siw0 (-R, rdma_cm:
# iWARP needs it), written to $VMOUT/perftest.json as an array of
#   {device, tool, size, iterations, rdma_cm, events, ok, gbps, gbps_peak, mpps}      (*_bw)
#   {device, tool, size, iterations, rdma_cm, events, ok, usec, usec_avg, usec_p99}   (*_lat; usec = typical)
# then `node dist/bench/verbs.js` (if built) with PERFTEST_JSON=$VMOUT/perftest.json, then
# bench/completion.sh and bench/smbdirect.sh, and
# BENCH_RESULTS_DIR=$VMOUT/bench-results: the repo is read-only here, so benches write their
# JSON there and ci/softroce.sh copies bench-results/*.json to the repo's bench/results/.
# Absolute figures under TCG are noisy: compare against the perftest rows of the same boot.
# Exit: 0, 1 if a perftest run failed, 3 device missing, or the node bench's code.
set -uo pipefail
source "${BASH_SOURCE[0]%/*}/lib.sh"
setup_devices || exit 3

N_SMALL=${SOFTROCE_BENCH_ITERS_4K:-2000}   # 4 KiB
N_BIG=${SOFTROCE_BENCH_ITERS_1M:-200}      # 1 MiB
N_LAT=${SOFTROCE_BENCH_ITERS_LAT:-1000}
LOGS=$VMOUT/perftest
mkdir -p "$LOGS"
fail=0
RECORDS=()

# jnum <var> <text>: <var> = <text> if it is a plain number, else null (JSON); no fork
jnum() { if [[ $2 =~ ^[0-9]+(\.[0-9]+)?$ ]]; then printf -v "$1" '%s' "$2"; else printf -v "$1" null; fi; }

# perf <dev> <ip> <tool> <size> <iters> [-R|-] [-e]: server in the background, client in the
# foreground; the client's result line (the first data row under the "#bytes" header) becomes one
# record. -e: completions by events instead of busy polling (the mode our addon always uses).
# A failed run or a zero rate (perftest on siw under TCG did both, once in a few boots) is run once
# more; the record of the last attempt counts.
perf() {
  ATTEMPT=1 perf_once "$@" && return 0
  glog "retrying $3 on $1 once"
  ATTEMPT=2 perf_once "$@" || fail=1
}

perf_once() {
  local dev=$1 ip=$2 tool=$3 size=$4 iters=$5 cm=${6:-} ev=${7:-} t0=$EPOCHREALTIME ms sp crc src
  [ "$cm" = - ] && cm=
  local -a opts=(-d "$dev" -F -s "$size" -n "$iters")
  local name=$dev-$tool-$size${cm:+-R}${ev} hdr=0 rec a c d e f h rest x y z cmj=false evj=false
  [ -n "$cm" ] && cmj=true
  [ -n "$ev" ] && { evj=true; opts+=(-e); }
  [ "$dev" = rxe0 ] && [ -z "$cm" ] && opts+=(-x "$RXE_GID_INDEX")
  [ -n "$cm" ] && opts+=(-R)
  [[ $tool == *_bw ]] && opts+=(--report_gbits)
  [ -n "$cm" ] && wait_no_cm
  timeout 120 "$tool" "${opts[@]}" > "$LOGS/$name-server.log" 2>&1 & sp=$!
  if [ -n "$cm" ]; then wait_cm; else wait_tcp 18515; fi
  timeout 120 "$tool" "${opts[@]}" "$ip" > "$LOGS/$name-client.log" 2>&1; crc=$?
  wait $sp; src=$?
  ms_since "$t0" ms
  rec="{\"device\":\"$dev\",\"tool\":\"$tool\",\"size\":$size,\"iterations\":$iters,\"rdma_cm\":$cmj,\"events\":$evj"
  local val=
  while read -r a _ c d e f _ h rest; do
    if [ "$a" = "#bytes" ]; then hdr=1; continue; fi
    if [ $hdr = 1 ] && [ "$a" = "$size" ]; then
      if [[ $tool == *_bw ]]; then   # #bytes #iterations BWpeak BWaverage MsgRate
        jnum x "$d"; jnum y "$c"; jnum z "$e"; val="$x Gb/s"
        rec+=",\"gbps\":$x,\"gbps_peak\":$y,\"mpps\":$z"
      else                           # #bytes #iter t_min t_max t_typical t_avg t_stdev 99% 99.9%
        jnum x "$e"; jnum y "$f"; jnum z "$h"; val="$x us"
        rec+=",\"usec\":$x,\"usec_avg\":$y,\"usec_p99\":$z"
      fi
      break
    fi
  done < "$LOGS/$name-client.log"
  local ok=true
  if [ $((crc | src)) -ne 0 ] || [ -z "$val" ] || [[ $x =~ ^0(\.0*)?$ ]]; then
    glog "FAIL $dev $tool ${cm:+-R }$size B (client $crc, server $src, result ${val:-none}) after ${ms}ms"
    cat "$LOGS/$name-client.log" "$LOGS/$name-server.log"
    [ "${ATTEMPT:-2}" = 1 ] && return 1
    ok=false
  else
    glog "$dev $tool ${cm:+-R }$size B: $val (${ms}ms)"
  fi
  RECORDS+=("$rec,\"ok\":$ok}")
  [ $ok = true ]
}

for tool in ib_write_bw ib_read_bw ib_send_bw; do
  perf rxe0 "$RXE_IP" "$tool" 4096 "$N_SMALL"
  perf rxe0 "$RXE_IP" "$tool" 1048576 "$N_BIG"
done
perf rxe0 "$RXE_IP" ib_send_lat 64 "$N_LAT"
perf rxe0 "$RXE_IP" ib_send_lat 64 "$N_LAT" - -e
for tool in ib_write_bw ib_read_bw ib_send_bw; do
  perf siw0 "$SIW_IP" "$tool" 4096 "$N_SMALL" -R
  perf siw0 "$SIW_IP" "$tool" 1048576 "$N_BIG" -R
done
perf siw0 "$SIW_IP" ib_send_lat 64 "$N_LAT" -R
perf siw0 "$SIW_IP" ib_send_lat 64 "$N_LAT" -R -e

json='[' sep=
for r in "${RECORDS[@]}"; do json+="$sep"$'\n  '"$r"; sep=,; done
printf '%s\n]\n' "$json" > "$VMOUT/perftest.json"
glog "perftest: ${#RECORDS[@]} runs -> perftest.json"

cd "${SOFTROCE_REPO:?}" || exit 4
if [ -f dist/bench/verbs.js ]; then
  mkdir -p "$VMOUT/bench-results"
  glog "node dist/bench/verbs.js"
  PERFTEST_JSON=$VMOUT/perftest.json BENCH_RESULTS_DIR=$VMOUT/bench-results \
    timeout -k 10 "${SOFTROCE_GUEST_TEST_TIMEOUT:-400}" "${SOFTROCE_NODE:?}" dist/bench/verbs.js
  rc=$?
  [ $rc -eq 0 ] || { glog "dist/bench/verbs.js exit $rc"; exit $rc; }
else
  glog "dist/bench/verbs.js not built: perftest references only"
fi
# the completion-queue and SMB Direct benches, each with its own perftest references in this boot
for b in bench/completion.sh bench/smbdirect.sh; do
  [ -f "dist/${b%.sh}.js" ] || { glog "dist/${b%.sh}.js not built: $b skipped"; continue; }
  glog "$b"
  bash "$b"
  rc=$?
  [ $rc -eq 0 ] || { glog "$b exit $rc"; exit $rc; }
done
exit $fail
