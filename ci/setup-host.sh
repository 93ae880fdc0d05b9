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
  samba-testsuite                                                  # smbtorture (docs/smb2/README.md, by hand)
  samba                                                            # smbd: a third SMB3 server for the client (test/smb2-client.test.ts)
  patch cifs-utils                                                 # the kernel SMB3 client in the VM: ci/patches, mount.cifs
  libglib2.0-0 libnl-3-200 libnl-genl-3-200                        # ksmbd-tools' libraries (installed below)
)
# ksmbd-tools >= 3.5.2 (the kernel SMB3 server's userspace, for the ksmbd runs in the VM):
# bookworm's 3.4.7 no longer works with its kernel >= 6.1.191 (share-config IPC replies lack
# payload_sz: every tree connect fails with STATUS_BAD_NETWORK_NAME); 3.5.2 is in
# bookworm-backports, fetched through a private apt list (the host's sources stay untouched). It is
# unpacked under KSMBD_TOOLS_DIR, not installed: the package conflicts with samba, whose smbd the
# client's tests run. The VM sees the host's root, so the tools are there too (test/softroce/ksmbd.ts).
KSMBD_TOOLS_MIN=3.5.2
KSMBD_TOOLS_DIR=/opt/smbdirect/ksmbd-tools
ksmbd_tools_ok() {
  local have
  have=$(cat "$KSMBD_TOOLS_DIR/VERSION" 2>/dev/null || true)
  [ -n "$have" ] && [ -x "$KSMBD_TOOLS_DIR/usr/sbin/ksmbd.mountd" ] && dpkg --compare-versions "$have" ge "$KSMBD_TOOLS_MIN"
}
install_ksmbd_tools() {
  local dir mirror deb
  dir=$(mktemp -d)
  mirror=$(awk '/^URIs:/ && $2 !~ /security/ {print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
  [ -n "$mirror" ] || mirror=$(awk '$1=="deb" && $3 !~ /security/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
  [ -n "$mirror" ] || { echo "setup-host: no Debian mirror in the apt sources for bookworm-backports" >&2; return 1; }
  mkdir -p "$dir/lists/partial" "$dir/debs"
  echo "deb $mirror bookworm-backports main" > "$dir/bpo.list"
  local bpo=(-o Dir::Etc::SourceList="$dir/bpo.list" -o Dir::Etc::SourceParts=/dev/null
             -o Dir::State::Lists="$dir/lists" -o APT::Sandbox::User=root)
  timeout 600 apt-get -q "${bpo[@]}" update >/dev/null &&
    (cd "$dir/debs" && timeout 600 apt-get -q "${bpo[@]}" download ksmbd-tools) &&
    deb=$(ls "$dir"/debs/ksmbd-tools_*_amd64.deb | sort -V | tail -1) &&
    rm -rf "$KSMBD_TOOLS_DIR" && mkdir -p "$KSMBD_TOOLS_DIR" &&
    dpkg-deb -x "$deb" "$KSMBD_TOOLS_DIR" &&
    dpkg-deb -f "$deb" Version > "$KSMBD_TOOLS_DIR/VERSION"
  local rc=$?
  rm -rf "$dir"
  return $rc
}

command -v dpkg-query >/dev/null || { echo "setup-host: not a Debian system (no dpkg-query)" >&2; exit 1; }

missing=()
for p in "${PKGS[@]}"; do
  # "install ok installed" is the only state that means usable
  st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [ "$st" = "install ok installed" ] || missing+=("$p")
done

ksmbd_tools_ok || missing+=("ksmbd-tools>=$KSMBD_TOOLS_MIN(bookworm-backports)")

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup-host: all $((${#PKGS[@]} + 1)) host packages present"
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "setup-host: missing host packages: ${missing[*]}" >&2
  echo "setup-host: run as root:  apt-get install -y --no-install-recommends ${missing[*]}" >&2
  exit 1
fi

echo "setup-host: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt_pkgs=()
for p in "${missing[@]}"; do [[ $p == ksmbd-tools* ]] || apt_pkgs+=("$p"); done
if [ ${#apt_pkgs[@]} -gt 0 ]; then
  # bounded: a hung mirror must not stall CI forever
  timeout 600 apt-get update -q
  timeout 1200 apt-get install -y -q --no-install-recommends "${apt_pkgs[@]}"
fi
if ! ksmbd_tools_ok; then
  install_ksmbd_tools || { echo "setup-host: installing ksmbd-tools >= $KSMBD_TOOLS_MIN from bookworm-backports failed" >&2; exit 1; }
fi
echo "setup-host: done"
