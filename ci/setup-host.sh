#!/usr/bin/env bash
# Host packages for the soft-RoCE/soft-iWARP VM harness (Debian 12).
# Installs only what is missing, and only as root; otherwise says what to run.
# The VM runs the host's own userspace (its / is shared read-only over 9p), so
# the RDMA userspace (rdma-core, providers, perftest) is needed on the host too.
set -euo pipefail

PKGS=(
  qemu-system-x86 busybox-static kmod cpio xz-utils iproute2       # VM + initramfs
  rdma-core ibverbs-providers ibverbs-utils rdmacm-utils perftest  # RDMA userspace (used inside the VM)
  libibverbs-dev librdmacm-dev pkg-config                          # headers for the native addon
  gcc-12 make binutils                                             # out-of-tree siw build (= kernel's compiler)
  tshark                                                           # decodes a captured iWARP session (test/softroce)
  cppcheck                                                         # npm run lint: the addon's C++
  smbclient                                                        # a real SMB2 peer for src/smb2 (test/smb2-server.test.ts)
)

command -v dpkg-query >/dev/null || { echo "setup-host: not a Debian system (no dpkg-query)" >&2; exit 1; }

missing=()
for p in "${PKGS[@]}"; do
  # "install ok installed" is the only state that means usable
  st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [ "$st" = "install ok installed" ] || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup-host: all ${#PKGS[@]} host packages present"
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "setup-host: missing host packages: ${missing[*]}" >&2
  echo "setup-host: run as root:  apt-get install -y --no-install-recommends ${missing[*]}" >&2
  exit 1
fi

echo "setup-host: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# bounded: a hung mirror must not stall CI forever
timeout 600 apt-get update -q
timeout 1200 apt-get install -y -q --no-install-recommends "${missing[@]}"
echo "setup-host: done"
