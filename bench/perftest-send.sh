#!/usr/bin/env bash
# In the VM (from bench/completion.ts, or by hand): one `ib_send_bw -s 64` run per reference, as a
# JSON array on the file given as $1. Busy polling (perftest's default) on rxe0 and siw0 (-R,
# rdma_cm), and -e (completion events, as our addon works) on rxe0; `ib_send_bw -e -R` on siw0
# hung until its timeout here, so it is not run. $2: iterations (default 40000).
set -uo pipefail
source ci/guest/lib.sh
OUT=${1:?usage: perftest-send.sh <out.json> [iterations]}
N=${2:-40000}
logs=$VMOUT/perftest-64; mkdir -p "$logs"
json='[' sep=
for spec in "rxe0 $RXE_IP - -x $SMBDIRECT_RXE_GID_INDEX" "siw0 $SIW_IP - -R" "rxe0 $RXE_IP -e -x $SMBDIRECT_RXE_GID_INDEX"; do
  read -r dev ip ev flag arg <<< "$spec"
  opts=(-d "$dev" -F -s 64 -n "$N" --report_gbits $flag ${arg:+$arg})
  [ "$ev" = -e ] && opts+=(-e)
  cm=-; [ "$flag" = -R ] && cm=-R
  perftest_run "$dev" "$ip" "$cm" "$logs/$dev$ev" ib_send_bw 64 "${opts[@]}" && ok=true || ok=false
  gbps=${PT_ROW[3]:-null} mpps=${PT_ROW[4]:-null}   # #bytes #iterations BWpeak BWaverage MsgRate
  glog "ib_send_bw -s 64 $dev $ev: $gbps Gb/s, $mpps Mpps"
  json+="$sep{\"device\":\"$dev\",\"tool\":\"ib_send_bw\",\"size\":64,\"iterations\":$N,\"events\":$([ "$ev" = -e ] && echo true || echo false),\"rdma_cm\":$([ "$flag" = -R ] && echo true || echo false),\"ok\":$ok,\"gbps\":$gbps,\"mpps\":$mpps}"
  sep=,
done
printf '%s]\n' "$json" > "$OUT"
