#!/usr/bin/env bash
# Builds what the soft-RoCE/soft-iWARP VM boots, cached by kernel version:
#   ci/cache/kernel/<KVER>/vmlinux      uncompressed ELF kernel (PVH direct boot, fastest under TCG)
#   ci/cache/kernel/<KVER>/initramfs.cpio.gz   busybox + ci/init + the modules below (incl. siw)
# 1. downloads Debian's current 6.1 kernel package (apt-get download, never installed),
# 2. builds soft-iWARP (siw.ko) out of tree, because Debian ships CONFIG_RDMA_SIW unset, from
#    Debian's linux-source/linux-headers/linux-kbuild packages of exactly the same version,
# 3. builds the kernel's SMB3 client (cifs.ko) and server (ksmbd.ko) out of tree WITH SMB Direct,
#    which Debian leaves out (# CONFIG_CIFS_SMB_DIRECT / CONFIG_SMB_SERVER_SMBDIRECT is not set),
#    from the same source, with ci/patches/*.patch applied (installed as extra/, depmod override),
# 4. builds the initramfs.
# Idempotent: each step is skipped when its output exists, so a warm run costs ~0.3 s.
# Writes the kernel directory to ci/cache/current.  Env: SOFTROCE_KPKG (pin e.g.
# linux-image-6.1.0-56-amd64), SOFTROCE_CACHE (default ci/cache), SOFTROCE_BUILD_TIMEOUT (s/step).
set -euo pipefail

CI=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CACHE=${SOFTROCE_CACHE:-$CI/cache}
STEP_TIMEOUT=${SOFTROCE_BUILD_TIMEOUT:-900}
# modules the guest loads, in dependency order (resolved from modules.dep below):
# 9p root, dummy netdevs, soft-RoCE, rdma_cm userspace, soft-iWARP. crc32_generic is needed
# by "rdma link add ... type rxe" (ENOENT without it); libcrc32c by siw, and libcrc32c's init
# fails with ENOENT unless a crc32c implementation (crc32c_generic) is loaded BEFORE it.
MODULES="virtio_pci virtio-rng 9pnet_virtio 9p dummy crc32_generic crc32c_generic libcrc32c
  rdma_rxe rdma_ucm ib_umad siw"

log() { printf 'build-vm: %s\n' "$*"; }
die() { printf 'build-vm: ERROR: %s\n' "$*" >&2; exit 1; }
# watchdog around every external step that can hang (network, big archives, make)
bounded() { timeout --foreground -k 10 "$STEP_TIMEOUT" "$@"; }
apt_download() {  # runs in cwd; as root apt would otherwise warn about its _apt sandbox user
  if [ "$(id -u)" -eq 0 ]; then bounded apt-get -q -o APT::Sandbox::User=root download "$@"
  else bounded apt-get -q download "$@"; fi
}

for tool in apt-cache apt-get dpkg-deb depmod modinfo cpio gzip xz make gcc-12 strip flock; do
  command -v "$tool" >/dev/null || die "'$tool' not found: run ci/setup-host.sh as root"
done
/bin/busybox --list >/dev/null 2>&1 || die "/bin/busybox missing: install busybox-static"

mkdir -p "$CACHE/kernel"
# one build at a time (two CI jobs in the same checkout would otherwise corrupt the cache)
exec 9>"$CACHE/.build.lock"
flock -w 1800 9 || die "timed out waiting for $CACHE/.build.lock"

# --- which kernel: the package linux-image-amd64 currently depends on (6.1 ABI moves: -56, -57, ...)
resolve_kpkg() {
  apt-cache depends linux-image-amd64 2>/dev/null \
    | sed -n 's/^ *Depends: \(linux-image-6\.1\.0-[0-9]*-amd64\)$/\1/p' | head -1
}
KPKG=${SOFTROCE_KPKG:-$(resolve_kpkg)}
if [ -z "$KPKG" ] && [ "$(id -u)" -eq 0 ]; then
  log "apt lists do not know linux-image-amd64 yet: apt-get update"
  bounded apt-get update -q >/dev/null
  KPKG=$(resolve_kpkg)
fi
if [ -z "$KPKG" ]; then
  # offline / no apt lists: fall back to the newest kernel already in the cache
  KPKG=$(cd "$CACHE/kernel" && ls -d 6.1.0-*-amd64 2>/dev/null | sort -V | tail -1)
  [ -n "$KPKG" ] || die "cannot resolve the Debian 6.1 kernel (apt-cache depends linux-image-amd64 gives nothing; run apt-get update as root, or set SOFTROCE_KPKG)"
  KPKG=linux-image-$KPKG
  log "apt cannot resolve the kernel; using cached $KPKG"
fi
KVER=${KPKG#linux-image-}                      # 6.1.0-56-amd64
[[ $KVER =~ ^6\.1\.0-[0-9]+-amd64$ ]] || die "unexpected kernel package '$KPKG' (want linux-image-6.1.0-N-amd64)"
ABI=${KVER%-amd64}                             # 6.1.0-56
SER=6.1
K=$CACHE/kernel/$KVER
ROOT=$K/root                                   # dpkg -x of the image package
MODDIR=$ROOT/lib/modules/$KVER
mkdir -p "$K/debs"

# initramfs inputs: rebuild it when ci/init, this script or the kernel tree changes
stamp_now() { cat "$CI/init" "$CI/build-vm.sh" | sha256sum | cut -c1-16; }
# cifs/ksmbd inputs: the patches applied to Debian's source
smb_stamp() { cat "$CI"/patches/*.patch 2>/dev/null | sha256sum | cut -c1-16; }
# depmod reads only this directory (-C): cifs and ksmbd resolve to our extra/ builds, not the stock
# kernel/fs/smb/ copies (which stay in the tree)
DEPMOD_D=$K/depmod.d
mkdir -p "$DEPMOD_D"
printf 'override cifs %s extra\noverride ksmbd %s extra\n' "$KVER" "$KVER" > "$DEPMOD_D/smbdirect.conf"
run_depmod() { bounded depmod -C "$DEPMOD_D" -b "$ROOT" "$KVER"; }

if [ -f "$K/initramfs.cpio.gz" ] && [ -f "$MODDIR/extra/siw.ko" ] && [ -f "$K/vmlinux" ] \
   && [ -f "$MODDIR/extra/cifs.ko" ] && [ -f "$MODDIR/extra/ksmbd.ko" ] \
   && [ "$(cat "$MODDIR/extra/smb.stamp" 2>/dev/null)" = "$(smb_stamp)" ] \
   && [ "$(cat "$K/initramfs.stamp" 2>/dev/null)" = "$(stamp_now)" ]; then
  echo "$K" > "$CACHE/current"
  log "cached: kernel $KVER, siw, initramfs ($K)"
  exit 0
fi

# --- 1. kernel image: download + unpack (never installed)
if [ ! -f "$ROOT/boot/vmlinuz-$KVER" ] || [ ! -f "$MODDIR/modules.dep" ]; then
  deb=$(ls "$K/debs/${KPKG}_"*.deb 2>/dev/null | head -1 || true)
  if [ -z "$deb" ]; then
    log "downloading $KPKG"
    (cd "$K/debs" && apt_download "$KPKG") \
      || { [ "$(id -u)" -eq 0 ] && bounded apt-get update -q >/dev/null && (cd "$K/debs" && apt_download "$KPKG"); } \
      || die "apt-get download $KPKG failed (stale apt lists? run apt-get update)"
    deb=$(ls "$K/debs/${KPKG}_"*.deb | head -1)
  fi
  log "unpacking $(basename "$deb")"
  rm -rf "$ROOT.tmp" "$ROOT"
  bounded dpkg-deb -x "$deb" "$ROOT.tmp"
  mv "$ROOT.tmp" "$ROOT"                       # atomic: a half unpacked tree never looks done
  [ -f "$ROOT/boot/vmlinuz-$KVER" ] || die "$deb has no boot/vmlinuz-$KVER"
  rm -f "$K/vmlinux"
fi
VER=$(dpkg-deb -f "$(ls "$K/debs/${KPKG}_"*.deb | head -1)" Version)   # 6.1.192-2

# --- 2. uncompressed ELF vmlinux: qemu boots it through the PVH entry, skipping the real-mode
# setup and the in-guest xz decompression (~2 s under TCG)
if [ ! -f "$K/vmlinux" ]; then
  vz=$ROOT/boot/vmlinuz-$KVER
  off=$(LC_ALL=C grep -abo -m1 $'\xfd7zXZ' "$vz" | head -1 | cut -d: -f1 || true)
  [ -n "$off" ] || die "no xz payload in $vz"
  tail -c +$((off + 1)) "$vz" | xz -dcq > "$K/vmlinux.tmp" 2>/dev/null || true   # trailing data after the xz stream is expected
  [ "$(head -c 4 "$K/vmlinux.tmp" | od -An -c | tr -d ' ')" = '177ELF' ] || die "vmlinux extraction from $vz failed"
  mv "$K/vmlinux.tmp" "$K/vmlinux"
  log "vmlinux extracted ($(du -m "$K/vmlinux" | cut -f1) MB)"
fi

# --- 3. siw.ko out of tree from the same version's source + headers + kbuild
siw_ok() {  # built for exactly this kernel?
  [ -f "$1" ] && [ "$(modinfo -F vermagic "$1" 2>/dev/null | cut -d' ' -f1)" = "$KVER" ]
}
# Debian's headers + kbuild of exactly this version, unpacked (never installed) into $W/hdr
W=$K/siw-build
H=$W/hdr/usr/src/linux-headers-$KVER
prepare_headers() {
  mkdir -p "$W"
  local need get p
  need=("linux-headers-$KVER" "linux-headers-$ABI-common" "linux-kbuild-$SER" "linux-source-$SER")
  get=()
  for p in "${need[@]}"; do ls "$K/debs/${p}_${VER}_"*.deb >/dev/null 2>&1 || get+=("$p=$VER"); done
  if [ ${#get[@]} -gt 0 ]; then
    log "downloading ${get[*]}"
    (cd "$K/debs" && apt_download "${get[@]}") \
      || die "apt-get download ${get[*]} failed: source/headers must match the image version $VER exactly"
  fi
  if [ ! -f "$W/hdr/.done" ]; then
    rm -rf "$W/hdr"
    for p in linux-headers-$KVER linux-headers-$ABI-common linux-kbuild-$SER; do
      bounded dpkg-deb -x "$(ls "$K/debs/${p}_${VER}_"*.deb | head -1)" "$W/hdr"
    done
    # the arch Makefile includes /usr/src/linux-headers-<abi>-common/Makefile by absolute path:
    # point it at the unpacked copy (the scripts/ and tools/ symlinks are relative and work)
    echo "include $W/hdr/usr/src/linux-headers-$ABI-common/Makefile" > "$H/Makefile"
    touch "$W/hdr/.done"
  fi
}
if ! siw_ok "$MODDIR/extra/siw.ko"; then
  prepare_headers
  if [ ! -f "$W/siw/Makefile" ]; then
    log "extracting drivers/infiniband/sw/siw from linux-source-$SER (scans the whole tarball, ~20 s)"
    rm -rf "$W/src" "$W/siw"
    mkdir -p "$W/src"
    # stream the tarball out of the .deb: no 140 MB temporary copy
    bounded bash -o pipefail -c 'dpkg-deb --fsys-tarfile "$1" | tar -xO "./usr/src/linux-source-$2.tar.xz" \
        | tar -xJ -C "$3" "linux-source-$2/drivers/infiniband/sw/siw"' _ \
      "$(ls "$K/debs/linux-source-${SER}_${VER}_"*.deb | head -1)" "$SER" "$W/src"
    mv "$W/src/linux-source-$SER/drivers/infiniband/sw/siw" "$W/siw"
    rm -rf "$W/src"
  fi
  [ -f "$W/siw/siw_main.c" ] || die "siw sources missing in $W/siw"
  log "building siw.ko for $KVER with gcc-12"
  rm -f "$W/siw/siw.ko"
  bounded make -s -C "$H" M="$W/siw" CONFIG_RDMA_SIW=m -j"$(nproc)" modules \
    || die "siw build failed (see the compiler output above)"
  [ -f "$W/siw/siw.ko" ] || die "siw build produced no siw.ko"
  mkdir -p "$MODDIR/extra"
  strip --strip-debug -o "$MODDIR/extra/siw.ko.tmp" "$W/siw/siw.ko"
  mv "$MODDIR/extra/siw.ko.tmp" "$MODDIR/extra/siw.ko"
  siw_ok "$MODDIR/extra/siw.ko" || die "siw.ko vermagic '$(modinfo -F vermagic "$MODDIR/extra/siw.ko")' does not match $KVER"
  run_depmod
  grep -q '^extra/siw.ko:' "$MODDIR/modules.dep" || die "depmod did not register extra/siw.ko"
  log "siw.ko built ($(modinfo -F vermagic "$MODDIR/extra/siw.ko"))"
fi

# --- 3b. cifs.ko + ksmbd.ko with SMB Direct. Sources: fs/smb/{client,server,common} and
# fs/internal.h (ksmbd's vfs.c includes it) from the same linux-source, plus
# scripts/asn1_compiler.c (linux-kbuild does not ship the host tool both Makefiles need).
# Kconfig symbols are switched on twice: as make variables (the Makefiles'
# "cifs-$(CONFIG_CIFS_SMB_DIRECT) += smbdirect.o") and as C defines through KCFLAGS (the C code
# tests "#ifdef CONFIG_..." and the stock autoconf.h leaves them undefined). The other CONFIG_CIFS_*
# come unchanged from the stock config through the headers' auto.conf. Recipe and the gotchas
# it took: docs/smb2/kernel-peers.md.
if ! siw_ok "$MODDIR/extra/cifs.ko" || ! siw_ok "$MODDIR/extra/ksmbd.ko" \
   || [ "$(cat "$MODDIR/extra/smb.stamp" 2>/dev/null)" != "$(smb_stamp)" ]; then
  prepare_headers
  S=$K/smb-build
  if [ ! -f "$S/src/fs/smb/server/Makefile" ] || [ "$(cat "$S/src/.patches" 2>/dev/null)" != "$(smb_stamp)" ]; then
    log "extracting fs/smb from linux-source-$SER (scans the whole tarball, ~20 s)"
    rm -rf "$S"
    mkdir -p "$S/src"
    bounded bash -o pipefail -c 'dpkg-deb --fsys-tarfile "$1" | tar -xO "./usr/src/linux-source-$2.tar.xz" \
        | tar -xJ -C "$3" --strip-components=1 "linux-source-$2/fs/smb" "linux-source-$2/fs/internal.h" \
          "linux-source-$2/scripts/asn1_compiler.c"' _ \
      "$(ls "$K/debs/linux-source-${SER}_${VER}_"*.deb | head -1)" "$SER" "$S/src"
    for p in "$CI"/patches/*.patch; do
      [ -f "$p" ] || continue
      log "applying ${p##*/}"
      patch -s -p1 -d "$S/src" < "$p" || die "patch ${p##*/} does not apply to $VER"
    done
    smb_stamp > "$S/src/.patches"
  fi
  KS=$W/hdr/usr/lib/linux-kbuild-$SER/scripts
  if [ ! -x "$KS/asn1_compiler" ]; then   # the kernel's own hostprogs rule: -I$(srctree)/include
    gcc -O2 -I"$W/hdr/usr/src/linux-headers-$ABI-common/include" -o "$KS/asn1_compiler" \
      "$S/src/scripts/asn1_compiler.c" || die "building asn1_compiler failed"
  fi
  log "building ksmbd.ko and cifs.ko with SMB Direct for $KVER with gcc-12"
  bounded make -s -C "$H" M="$S/src/fs/smb/server" -j"$(nproc)" \
    CONFIG_SMB_SERVER=m CONFIG_SMB_SERVER_SMBDIRECT=y KCFLAGS="-DCONFIG_SMB_SERVER_SMBDIRECT=1" modules \
    || die "ksmbd build failed (see the compiler output above)"
  bounded make -s -C "$H" M="$S/src/fs/smb/client" -j"$(nproc)" \
    CONFIG_CIFS=m CONFIG_CIFS_SMB_DIRECT=y KCFLAGS="-DCONFIG_CIFS_SMB_DIRECT=1" modules \
    || die "cifs build failed (see the compiler output above)"
  mkdir -p "$MODDIR/extra"
  strip --strip-debug -o "$MODDIR/extra/ksmbd.ko" "$S/src/fs/smb/server/ksmbd.ko"
  strip --strip-debug -o "$MODDIR/extra/cifs.ko" "$S/src/fs/smb/client/cifs.ko"
  for m in cifs ksmbd; do
    siw_ok "$MODDIR/extra/$m.ko" || die "$m.ko vermagic '$(modinfo -F vermagic "$MODDIR/extra/$m.ko")' does not match $KVER"
  done
  # proof that the RDMA code is in
  # (grep -c, not -q: -q would close the pipe early and pipefail would see nm's SIGPIPE)
  [ "$(nm "$S/src/fs/smb/server/ksmbd.ko" | grep -c " t smb_direct_")" -gt 0 ] || die "ksmbd.ko was built without SMB Direct"
  [ "$(nm "$S/src/fs/smb/client/cifs.ko" | grep -cE " [tT] smbd_")" -gt 0 ] || die "cifs.ko was built without SMB Direct"
  run_depmod
  for m in cifs ksmbd; do
    grep -q "^extra/$m.ko:" "$MODDIR/modules.dep" || die "depmod does not resolve $m to extra/$m.ko"
  done
  smb_stamp > "$MODDIR/extra/smb.stamp"
  log "cifs.ko and ksmbd.ko built with SMB Direct"
fi

# --- 4. initramfs: busybox, ci/init, modules in dependency order
declare -A SEEN=()
ORDER=()
add_path() {  # depth first: modules.dep lists a module's deps so that the LAST loads first
  local p=$1 line d deps
  [ -n "${SEEN[$p]:-}" ] && return 0
  SEEN[$p]=1
  line=$(grep -m1 -E "^${p//./\\.}:" "$MODDIR/modules.dep") || die "$p not in modules.dep"
  read -ra deps <<< "${line#*:}"
  for ((d = ${#deps[@]} - 1; d >= 0; d--)); do add_path "${deps[d]}"; done
  ORDER+=("$p")
}
for m in $MODULES; do
  pat=${m//[-_]/[-_]}
  line=$(grep -m1 -E "(^|/)${pat}\.ko(\.xz|\.zst)?:" "$MODDIR/modules.dep" || true)
  if [ -z "$line" ]; then
    grep -qE "/${pat}\.ko$" "$MODDIR/modules.builtin" && continue   # built in: nothing to load
    die "module $m not found for $KVER"
  fi
  add_path "${line%%:*}"
done

STAGE=$K/initramfs
rm -rf "$STAGE"
mkdir -p "$STAGE"/{bin,proc,sys,dev,newroot,modules}
cp /bin/busybox "$STAGE/bin/busybox"
for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -s busybox "$STAGE/bin/$a"; done
: > "$STAGE/modules/load-order"
i=0
for p in "${ORDER[@]}"; do
  i=$((i + 1)); f=$(printf '%02d-%s' "$i" "${p##*/}")
  case $p in   # busybox insmod wants plain .ko
    *.ko.xz)  xz -dc "$MODDIR/$p" > "$STAGE/modules/${f%.xz}"; f=${f%.xz} ;;
    *.ko.zst) zstd -qdc "$MODDIR/$p" > "$STAGE/modules/${f%.zst}"; f=${f%.zst} ;;
    *)        cp "$MODDIR/$p" "$STAGE/modules/$f" ;;
  esac
  echo "$f" >> "$STAGE/modules/load-order"
done
cp "$CI/init" "$STAGE/init"
chmod 755 "$STAGE/init"
(cd "$STAGE" && find . | LC_ALL=C sort | cpio -o -H newc --quiet | gzip -1) > "$K/initramfs.cpio.gz.tmp"
mv "$K/initramfs.cpio.gz.tmp" "$K/initramfs.cpio.gz"
rm -rf "$STAGE"
stamp_now > "$K/initramfs.stamp"
echo "$K" > "$CACHE/current"
log "initramfs: $(du -k "$K/initramfs.cpio.gz" | cut -f1) KiB; modules: ${ORDER[*]##*/}"
log "ready: kernel $KVER ($VER) in $K"
