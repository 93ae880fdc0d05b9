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

# perf <dev> <ip> <tool> <size> <iters> [-R|-] [-e]: one record from perftest_run (lib.sh; it runs
# a failed or zero-rate measurement once more). -e: completions by events instead of busy polling
# (the mode our addon always uses).
perf() {
  local dev=$1 ip=$2 tool=$3 size=$4 iters=$5 cm=${6:-} ev=${7:-} t0=$EPOCHREALTIME ms x y z val= ok=true
  [ "$cm" = - ] && cm=
  local -a opts=(-d "$dev" -F -s "$size" -n "$iters")
  local name=$dev-$tool-$size${cm:+-R}${ev} cmj=false evj=false rec
  [ -n "$cm" ] && cmj=true
  [ -n "$ev" ] && { evj=true; opts+=(-e); }
  [ "$dev" = rxe0 ] && [ -z "$cm" ] && opts+=(-x "$RXE_GID_INDEX")
  [ -n "$cm" ] && opts+=(-R)
  [[ $tool == *_bw ]] && opts+=(--report_gbits)
  perftest_run "$dev" "$ip" "${cm:--}" "$LOGS/$name" "$tool" "$size" "${opts[@]}" || ok=false
  ms_since "$t0" ms
  rec="{\"device\":\"$dev\",\"tool\":\"$tool\",\"size\":$size,\"iterations\":$iters,\"rdma_cm\":$cmj,\"events\":$evj"
  if [ ${#PT_ROW[@]} -gt 0 ]; then
    if [[ $tool == *_bw ]]; then   # #bytes #iterations BWpeak BWaverage MsgRate
      jnum x "${PT_ROW[3]:-}"; jnum y "${PT_ROW[2]:-}"; jnum z "${PT_ROW[4]:-}"; val="$x Gb/s"
      rec+=",\"gbps\":$x,\"gbps_peak\":$y,\"mpps\":$z"
    else                           # #bytes #iter t_min t_max t_typical t_avg t_stdev 99% 99.9%
      jnum x "${PT_ROW[4]:-}"; jnum y "${PT_ROW[5]:-}"; jnum z "${PT_ROW[7]:-}"; val="$x us"
      rec+=",\"usec\":$x,\"usec_avg\":$y,\"usec_p99\":$z"
    fi
  fi
  if [ $ok = true ]; then
    glog "$dev $tool ${cm:+-R }$size B: $val (${ms}ms)"
  else
    fail=1
    glog "FAIL $dev $tool ${cm:+-R }$size B (exit $PT_RC, result ${val:-none}) after ${ms}ms"
    cat "$LOGS/$name-client.log" "$LOGS/$name-server.log"
  fi
  RECORDS+=("$rec,\"ok\":$ok}")
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
for b in bench/completion.sh bench/smbdirect.sh bench/smb2.sh bench/smb2-client.sh; do
  [ -f "dist/${b%.sh}.js" ] || { glog "dist/${b%.sh}.js not built: $b skipped"; continue; }
  glog "$b"
  bash "$b"
  rc=$?
  [ $rc -eq 0 ] || { glog "$b exit $rc"; exit $rc; }
done
exit $fail
