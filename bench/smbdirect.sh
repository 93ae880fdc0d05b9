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
    cm=-; [ "$flag" = -R ] && cm=-R
    perftest_run "$dev" "$ip" "$cm" "$out/$dev-$tool" "$tool" "$size" "${opts[@]}" && ok=true || ok=false
    rec=
    if [ ${#PT_ROW[@]} -gt 0 ]; then   # bandwidth: #bytes #iterations BWpeak BWaverage MsgRate; latency: ... t_typical at 4, 99% at 7
      if [[ $tool == *_bw ]]; then rec="\"gbps\":${PT_ROW[3]:-null},\"mpps\":${PT_ROW[4]:-null}"; else rec="\"usec\":${PT_ROW[4]:-null},\"usec_p99\":${PT_ROW[7]:-null}"; fi
    fi
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
