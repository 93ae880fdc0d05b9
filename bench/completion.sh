#!/usr/bin/env bash
# In the VM: bash ci/softroce.sh bench/completion.sh
# ib_send_bw -s 64 on rxe0 and siw0 (-R) in this boot, then node dist/bench/completion.js; the JSON
# lands in $VMOUT/bench-results/completion.json (copy it to bench/results/ on the host).
set -uo pipefail
source ci/guest/lib.sh
N=${SOFTROCE_BENCH_MSGS:-40000}
out=$VMOUT/perftest-64; mkdir -p "$out" "$VMOUT/bench-results"
json='[' sep=
# busy polling (perftest's default, the reference) and, on rxe0, -e (completion events, as our
# addon works); `ib_send_bw -e -R` on siw0 hung until the 120 s timeout here, so it is not run
for spec in "rxe0 $RXE_IP - -x $SMBDIRECT_RXE_GID_INDEX" "siw0 $SIW_IP - -R" "rxe0 $RXE_IP -e -x $SMBDIRECT_RXE_GID_INDEX"; do
  read -r dev ip ev flag arg <<< "$spec"
  opts=(-d "$dev" -F -s 64 -n "$N" --report_gbits $flag ${arg:+$arg})
  [ "$ev" = -e ] && opts+=(-e)
  timeout 120 ib_send_bw "${opts[@]}" > "$out/$dev$ev-server.log" 2>&1 & sp=$!
  if [ "$flag" = -R ]; then wait_cm; else wait_tcp 18515; fi
  timeout 120 ib_send_bw "${opts[@]}" "$ip" > "$out/$dev$ev-client.log" 2>&1; crc=$?
  wait $sp
  hdr=0 gbps=null mpps=null
  while read -r a b c d e _; do
    if [ "$a" = "#bytes" ]; then hdr=1; continue; fi
    if [ $hdr = 1 ] && [ "$a" = 64 ]; then gbps=$d mpps=$e; break; fi
  done < "$out/$dev$ev-client.log"
  ok=false; [ $crc -eq 0 ] && [ "$mpps" != null ] && ok=true
  glog "ib_send_bw -s 64 $dev $ev: $gbps Gb/s, $mpps Mpps"
  json+="$sep{\"device\":\"$dev\",\"tool\":\"ib_send_bw\",\"size\":64,\"iterations\":$N,\"events\":$([ "$ev" = -e ] && echo true || echo false),\"rdma_cm\":$([ "$flag" = -R ] && echo true || echo false),\"ok\":$ok,\"gbps\":$gbps,\"mpps\":$mpps}"
  sep=,
done
printf '%s]\n' "$json" > "$out/perftest.json"
PERFTEST_JSON=$out/perftest.json BENCH_RESULTS_DIR=$VMOUT/bench-results SOFTROCE_BENCH_MSGS=$N \
  timeout -k 10 400 "${SOFTROCE_NODE:-node}" dist/bench/completion.js
