#!/usr/bin/env bash
# Usage: ci/run-vm.sh <run-dir>
# Boots the kernel built by ci/build-vm.sh under qemu (TCG, never KVM), with the host's / as the
# guest's read-only root (9p) and <run-dir>/out as the writable share /run/vmout, where
# <run-dir>/out/start.sh must already exist (the guest runs it with the host's bash).
# Streams the serial console with host timestamps (seconds since qemu start) to stdout and to
# <run-dir>/console.log. Exits with the guest script's exit code; 124 if a watchdog fired,
# 99 if the guest left no exit code (did not boot or crashed).
# No network device at all (-nic none): RDMA traffic stays on dummy netdevs inside the guest.
# Env: SOFTROCE_TIMEOUT (s, default 540), SOFTROCE_BOOT_TIMEOUT (s until /init must have started,
# else one more boot; 90), SOFTROCE_SMP (2), SOFTROCE_MEM (2G), SOFTROCE_KDIR.
set -euo pipefail

CI=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
RUN=$(cd "${1:?usage: run-vm.sh <run-dir>}" && pwd)
OUT=$RUN/out
KDIR=${SOFTROCE_KDIR:-$(cat "$CI/cache/current" 2>/dev/null || true)}
TIMEOUT=${SOFTROCE_TIMEOUT:-540}
SMP=${SOFTROCE_SMP:-2}
MEM=${SOFTROCE_MEM:-2G}
[ -n "$KDIR" ] && [ -f "$KDIR/initramfs.cpio.gz" ] || { echo "run-vm: no VM image: run ci/build-vm.sh first" >&2; exit 2; }
[ -f "$OUT/start.sh" ] || { echo "run-vm: $OUT/start.sh missing" >&2; exit 2; }
# uncompressed ELF vmlinux boots through PVH (fast); the bzImage is the fallback
KERNEL=$KDIR/vmlinux
[ -f "$KERNEL" ] || KERNEL=$(ls "$KDIR"/root/boot/vmlinuz-* | head -1)
rm -f "$OUT/rc" "$OUT/booted"
# guest-side watchdog fires first so the guest can still report; the host one is the backstop
GUEST_TIMEOUT=$((TIMEOUT > 60 ? TIMEOUT - 15 : TIMEOUT * 3 / 4))

BOOT_TIMEOUT=${SOFTROCE_BOOT_TIMEOUT:-90}
: > "$RUN/console.log"

# Boot watchdog: once in a while qemu (TCG) sits before the first kernel line until the main
# watchdog fires; if /init has not said SOFTROCE-BOOT within BOOT_TIMEOUT, kill it and boot again.
watch_boot() {
  local i
  for ((i = 0; i < BOOT_TIMEOUT * 10; i++)); do
    grep -q 'SOFTROCE-BOOT' "$RUN/console.log" 2>/dev/null && return 0
    [ -f "$RUN/qemu.pid" ] && ! kill -0 "$(cat "$RUN/qemu.pid")" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "HOST: no boot within ${BOOT_TIMEOUT}s: killing qemu" >> "$RUN/console.log"
  [ -f "$RUN/qemu.pid" ] && kill "$(cat "$RUN/qemu.pid")" 2>/dev/null
  return 0
}

for attempt in 1 2; do
rm -f "$RUN/qemu.pid"
T0=$EPOCHREALTIME
echo "HOST: qemu start $(date -u +%FT%TZ) tcg smp=$SMP mem=$MEM kernel=${KERNEL#"$CI/"} watchdog=${TIMEOUT}s attempt=$attempt"
watch_boot & watcher=$!
set +e
# KVM on these hosts cannot boot a stock kernel: TCG only, multi-threaded.
# --foreground keeps qemu in our process group so Ctrl-C reaches it.
timeout --foreground -k 10 "$TIMEOUT" qemu-system-x86_64 -pidfile "$RUN/qemu.pid" \
  -accel tcg,thread=multi,tb-size=512 -cpu max -smp "$SMP" -m "$MEM" \
  -machine q35 -display none -monitor none -serial stdio -no-reboot -nic none \
  -device virtio-rng-pci \
  -kernel "$KERNEL" -initrd "$KDIR/initramfs.cpio.gz" \
  -append "console=ttyS0 rdinit=/init panic=-1 quiet loglevel=3 mitigations=off vmtimeout=$GUEST_TIMEOUT" \
  -virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap \
  -virtfs "local,path=$OUT,mount_tag=outshare,security_model=none,multidevs=remap" \
  </dev/null 2>&1 | {
    t0=${T0/./}
    while IFS= read -r line; do
      line=${line%$'\r'}
      d=$(( ${EPOCHREALTIME/./} - t0 ))
      printf -v line '[%4d.%03d] %s' $((d / 1000000)) $((d % 1000000 / 1000)) "$line"
      printf '%s\n' "$line"
      printf '%s\n' "$line" >&3
    done
  } 3>>"$RUN/console.log"
qrc=${PIPESTATUS[0]}
set -e
kill "$watcher" 2>/dev/null || true; wait "$watcher" 2>/dev/null || true
grep -q 'SOFTROCE-BOOT' "$RUN/console.log" && break
grep -q 'HOST: no boot within' "$RUN/console.log" || break   # not the boot hang: report as is
[ "$attempt" -lt 2 ] && echo "HOST: booting again" | tee -a "$RUN/console.log"
done
d=$(( ${EPOCHREALTIME/./} - ${T0/./} ))
printf -v secs '%d.%03d' $((d / 1000000)) $((d % 1000000 / 1000))
echo "HOST: qemu exit $qrc after ${secs}s" | tee -a "$RUN/console.log"
echo "$secs" > "$RUN/vm-seconds"
echo "$qrc" > "$RUN/qemu-rc"
if [ "$qrc" -eq 124 ] || [ "$qrc" -eq 137 ]; then
  echo "HOST: watchdog: qemu killed after ${TIMEOUT}s" | tee -a "$RUN/console.log"
  [ -f "$OUT/rc" ] || exit 124
fi
if [ -f "$OUT/rc" ]; then
  read -r rc < "$OUT/rc"
  [[ $rc =~ ^[0-9]+$ ]] || rc=98
  exit "$rc"
fi
echo "HOST: the guest wrote no exit code" | tee -a "$RUN/console.log"
exit 99
