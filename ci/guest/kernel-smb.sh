#!/usr/bin/env bash
# Runs INSIDE the VM: loads the kernel's SMB3 client (cifs.ko) and server (ksmbd.ko), the SMB Direct
# builds from ci/build-vm.sh (extra/ in the unpacked kernel tree $SOFTROCE_KROOT; the host's
# /lib/modules has no such kernel), and the SMB3 crypto they use. Idempotent; exit 0 when both are
# loaded and are our builds. Used by test/softroce/smb2-*.test.ts and bench/smb2.ts.
#   kernel-smb.sh load     load cifs + ksmbd (+ crypto, nls)
# Gotchas (docs/smb2/kernel-peers.md): the kernel's request_module() runs /sbin/modprobe in PID 1's
# root (the initramfs), which has neither kmod nor the modules: a wrapper there chroots into ours;
# kmod honours one softdep line per module, so the SMB3 crypto is loaded explicitly.
set -uo pipefail
[ "${SOFTROCE_IN_VM:-}" = 1 ] || { echo "kernel-smb.sh: runs only inside the VM" >&2; exit 2; }
KROOT=${SOFTROCE_KROOT:?SOFTROCE_KROOT (the unpacked kernel tree) must be set}
KVER=$(uname -r)
MODS=$KROOT/lib/modules/$KVER

case ${1:-load} in
  load)
    if [ ! -x /proc/1/root/sbin/modprobe ]; then
      mkdir -p /proc/1/root/sbin
      printf '#!/bin/sh\nexec /bin/chroot /newroot /sbin/modprobe -d %s "$@"\n' "$KROOT" > /proc/1/root/sbin/modprobe
      chmod +x /proc/1/root/sbin/modprobe
      echo /sbin/modprobe > /proc/sys/kernel/modprobe
    fi
    modprobe -d "$KROOT" -a cifs ksmbd || { echo "kernel-smb.sh: modprobe cifs ksmbd failed" >&2; exit 1; }
    modprobe -d "$KROOT" -a cmac ccm gcm sha512 ecb nls_utf8 || { echo "kernel-smb.sh: modprobe of the SMB3 crypto failed" >&2; exit 1; }
    for m in cifs ksmbd; do
      have=$(< "/sys/module/$m/srcversion")
      want=$(modinfo -F srcversion "$MODS/extra/$m.ko")
      [ "$have" = "$want" ] || { echo "kernel-smb.sh: loaded $m ($have) is not the SMB Direct build extra/$m.ko ($want)" >&2; exit 1; }
    done
    ;;
  *) echo "usage: kernel-smb.sh load" >&2; exit 2 ;;
esac
