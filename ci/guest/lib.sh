# Sourced by ci/guest/*.sh INSIDE the VM (the host's userspace, chrooted, read-only root).
# Every fork costs ~30 ms under TCG: loops use bash builtins only, and waits poll, never sleep.
# shellcheck shell=bash

RXE_IP=10.99.0.1
SIW_IP=10.99.1.1
VMOUT=${VMOUT:?VMOUT must be set (the guest writable share)}
# guard: this file creates netdevs and RDMA links; never do that on a host by accident
[ "${SOFTROCE_IN_VM:-}" = 1 ] || { echo "ci/guest/lib.sh: runs only inside the VM (ci/softroce.sh)" >&2; exit 2; }

glog() { printf 'GUEST: %s\n' "$*"; }

# siw pins user memory against RLIMIT_MEMLOCK even for root (no CAP_IPC_LOCK
# check), and the default 8 MiB is less than the tests register
ulimit -l unlimited

# nap <seconds>: sleep without forking (read with a timeout on a fifo nobody writes)
mkfifo /tmp/.softroce-nap 2>/dev/null || true
exec {NAPFD}<>/tmp/.softroce-nap
nap() { read -r -t "${1:-0.05}" -u "$NAPFD" _ || true; }

# ms_since <EPOCHREALTIME value> <var>: elapsed milliseconds into <var>
ms_since() { local a=${1/./} b=${EPOCHREALTIME/./}; printf -v "$2" '%d' $(((b - a) / 1000)); }

# wait_tcp <port> [seconds]: a TCP listener on <port> (read from /proc, no fork per poll)
wait_tcp() {
  local hex i f addr st
  printf -v hex ':%04X' "$1"
  for ((i = 0; i < ${2:-20} * 20; i++)); do
    for f in /proc/net/tcp /proc/net/tcp6; do
      while read -r _ addr _ st _; do
        [[ $addr == *"$hex" && $st == 0A ]] && return 0
      done < "$f"
    done
    nap 0.05
  done
  glog "no TCP listener on port $1 after ${2:-20}s"; return 1
}

# wait_cm [seconds]: an rdma_cm listener (perftest -R, rping -s) in the kernel cm_id table
wait_cm() {
  local i out
  for ((i = 0; i < ${1:-20} * 10; i++)); do
    out=$(rdma resource show cm_id 2>/dev/null)
    [[ $out == *LISTEN* ]] && return 0
    nap 0.1
  done
  glog "no rdma_cm listener after ${1:-20}s"; return 1
}

# wait_no_cm [seconds]: no rdma_cm listener left. The listen id of a server that just exited can
# linger a moment in the kernel's table, and wait_cm would take it for the next server's (the
# client then connects too early, is refused, and perftest segfaults on that error path).
wait_no_cm() {
  local i out
  for ((i = 0; i < ${1:-10} * 10; i++)); do
    out=$(rdma resource show cm_id 2>/dev/null)
    [[ $out != *LISTEN* ]] && return 0
    nap 0.1
  done
  glog "an rdma_cm listener is still there after ${1:-10}s"; return 1
}

# perftest_run <dev> <ip> <-R|-> <log prefix> <tool> <size> <tool options...>: one perftest
# measurement, the server in the background and the client in the foreground against <ip> (-R:
# rdma_cm, else perftest's TCP exchange on 18515), logs in <prefix>-server.log / -client.log. The
# client's result row (the first under "#bytes" that starts with <size>) lands in PT_ROW, the exit
# status (client's, else server's) in PT_RC. A failed run, no row, or a zero rate (perftest on siw
# under TCG did each, once in a few boots) runs once more. Status 0 if the last attempt gave a row
# with a nonzero rate.
perftest_run() {
  local dev=$1 ip=$2 cm=$3 logs=$4 tool=$5 size=$6 attempt sp crc src hdr rate
  shift 6
  local -a a
  for attempt in 1 2; do
    [ "$cm" = -R ] && wait_no_cm
    timeout 120 "$tool" "$@" > "$logs-server.log" 2>&1 & sp=$!
    if [ "$cm" = -R ]; then wait_cm; else wait_tcp 18515; fi
    timeout 120 "$tool" "$@" "$ip" > "$logs-client.log" 2>&1; crc=$?
    wait $sp; src=$?
    PT_RC=$((crc ? crc : src)) PT_ROW=() hdr=0
    while read -r -a a; do
      if [ "${a[0]:-}" = "#bytes" ]; then hdr=1; continue; fi
      if [ $hdr = 1 ] && [ "${a[0]:-}" = "$size" ]; then PT_ROW=("${a[@]}"); break; fi
    done < "$logs-client.log"
    # the rate: BW average of the bandwidth tools, t_typical of the latency ones
    rate=${PT_ROW[3]:-}; [[ $tool == *_lat ]] && rate=${PT_ROW[4]:-}
    [ $PT_RC -eq 0 ] && [ -n "$rate" ] && [[ ! $rate =~ ^0(\.0*)?$ ]] && return 0
    [ $attempt = 1 ] && glog "$tool -s $size on $dev: exit $PT_RC, result ${rate:-none}; once more"
  done
  return 1
}

# port_state <dev>: sets PSTATE to ACTIVE, DOWN, ... (empty and status 1 if the device is absent)
port_state() {
  PSTATE=
  [ -r "/sys/class/infiniband/$1/ports/1/state" ] || return 1
  read -r _ PSTATE < "/sys/class/infiniband/$1/ports/1/state"   # "4: ACTIVE"
}

# setup_devices: dummy netdevs d0/d1, rxe0 on d0 and siw0 on d1, both ports ACTIVE.
# Prints the SOFTROCE-DEVICES marker and writes $VMOUT/devices; on failure prints
# SOFTROCE-DEVICE-MISSING, writes $VMOUT/devices-missing and returns 1 (callers exit 3).
setup_devices() {
  local t0=$EPOCHREALTIME dev i ok ms g ty batch
  local -a missing=()
  # one `ip` process for all netdev work
  printf -v batch '%s\n' "link add d0 type dummy" "addr add $RXE_IP/24 dev d0" "link set d0 up" \
    "link add d1 type dummy" "addr add $SIW_IP/24 dev d1" "link set d1 up"
  ip -batch - <<< "$batch" || glog "ip -batch reported an error"
  [ -d /sys/module/rdma_rxe ] || glog "module rdma_rxe is not loaded"
  [ -d /sys/module/siw ] || glog "module siw is not loaded"
  rdma link add rxe0 type rxe netdev d0 || glog "rdma link add rxe0 failed"
  rdma link add siw0 type siw netdev d1 || glog "rdma link add siw0 failed"
  for dev in rxe0 siw0; do
    ok=
    for ((i = 0; i < 200; i++)); do   # up to 10 s for the port to come up
      if port_state "$dev" && [ "$PSTATE" = ACTIVE ]; then ok=1; break; fi
      nap 0.05
    done
    [ -n "$ok" ] || missing+=("$dev(${PSTATE:-absent})")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "SOFTROCE-DEVICE-MISSING ${missing[*]}"
    echo "${missing[*]}" > "$VMOUT/devices-missing"
    rdma link show
    return 1
  fi
  # RoCE v2 GID of the IPv4 address (perftest -x; tests get it as SMBDIRECT_RXE_GID_INDEX)
  RXE_GID_INDEX=
  for i in 0 1 2 3 4 5 6 7; do
    read -r g < "/sys/class/infiniband/rxe0/ports/1/gids/$i" 2>/dev/null || continue
    read -r ty < "/sys/class/infiniband/rxe0/ports/1/gid_attrs/types/$i" 2>/dev/null || continue
    case "$g:$ty" in 0000:0000:0000:0000:0000:ffff:*"RoCE v2") RXE_GID_INDEX=$i; break ;; esac
  done
  export SMBDIRECT_SOFTROCE=1 SMBDIRECT_VMOUT=$VMOUT \
    SMBDIRECT_RXE_DEV=rxe0 SMBDIRECT_RXE_IP=$RXE_IP SMBDIRECT_RXE_GID_INDEX=$RXE_GID_INDEX \
    SMBDIRECT_SIW_DEV=siw0 SMBDIRECT_SIW_IP=$SIW_IP
  ms_since "$t0" ms
  echo "SOFTROCE-DEVICES rxe0=ACTIVE(d0 $RXE_IP gid-index ${RXE_GID_INDEX:-?}) siw0=ACTIVE(d1 $SIW_IP) in ${ms}ms"
  echo "rxe0 siw0" > "$VMOUT/devices"
}
