#!/usr/bin/env bash
# In the VM: bash ci/softroce.sh bench/smbdirect.sh   (run `npx tsc -p tsconfig.json` first)
# perftest at SMB Direct's sizes on rxe0 and siw0 (-R) in this boot (ib_send_bw -s 1364: a Send of
# MaxSendSize; ib_write_bw / ib_read_bw -s 1 MiB; ib_send_lat -s 88: a 64-byte message with its
# header), then node dist/bench/smbdirect.js on the verbs provider for each device. JSON lands in
# $VMOUT/bench-results/smbdirect-<device>.json (copy it to bench/results/ on the host).
set -uo pipefail
source ci/guest/lib.sh
out=$VMOUT/perftest-smbd; mkdir -p "$out" "$VMOUT/bench-results"
json='[' sep=
for spec in "rxe0 $RXE_IP -x $SMBDIRECT_RXE_GID_INDEX" "siw0 $SIW_IP -R"; do
  read -r dev ip flag arg <<< "$spec"
  for t in "ib_send_bw 1364 20000" "ib_write_bw 1048576 200" "ib_read_bw 1048576 200" "ib_send_lat 88 2000"; do
    read -r tool size n <<< "$t"
    opts=(-d "$dev" -F -s "$size" -n "$n" $flag ${arg:+$arg})
    [[ $tool == *_bw ]] && opts+=(--report_gbits)
    # a failed run or a zero rate (perftest on siw under TCG, once in a few boots) runs once more
    for attempt in 1 2; do
      [ "$flag" = -R ] && wait_no_cm
      timeout 120 "$tool" "${opts[@]}" > "$out/$dev-$tool-server.log" 2>&1 & sp=$!
      if [ "$flag" = -R ]; then wait_cm; else wait_tcp 18515; fi
      timeout 120 "$tool" "${opts[@]}" "$ip" > "$out/$dev-$tool-client.log" 2>&1; crc=$?
      wait $sp
      hdr=0 rec= rate=
      while read -r a b c d e f g h _; do
        if [ "$a" = "#bytes" ]; then hdr=1; continue; fi
        if [ $hdr = 1 ] && [ "$a" = "$size" ]; then
          if [[ $tool == *_bw ]]; then rec="\"gbps\":$d,\"mpps\":$e" rate=$d; else rec="\"usec\":$e,\"usec_p99\":$h" rate=$e; fi
          break
        fi
      done < "$out/$dev-$tool-client.log"
      ok=false; [ $crc -eq 0 ] && [ -n "$rec" ] && [[ ! $rate =~ ^0(\.0*)?$ ]] && ok=true
      [ $ok = true ] && break
      [ $attempt = 1 ] && glog "$tool -s $size $dev: failed (client $crc, ${rec:-no result}); once more"
    done
    [ -z "$rec" ] && rec='"gbps":null'
    glog "$tool -s $size $dev: $rec"
    json+="$sep{\"device\":\"$dev\",\"tool\":\"$tool\",\"size\":$size,\"iterations\":$n,\"ok\":$ok,$rec}"
    sep=,
  done
done
printf '%s]\n' "$json" > "$out/perftest.json"
rc=0
for spec in "rxe0 $RXE_IP" "siw0 $SIW_IP"; do
  read -r dev ip <<< "$spec"
  PERFTEST_JSON=$out/perftest.json BENCH_RESULTS_DIR=$VMOUT/bench-results \
    timeout -k 10 600 "${SOFTROCE_NODE:-node}" dist/bench/smbdirect.js --provider verbs --host "$ip" --device "$dev" \
      --scale "${SOFTROCE_SMBD_SCALE:-0.02}" --reps "${SOFTROCE_SMBD_REPS:-3}" || rc=$?
done
exit $rc
