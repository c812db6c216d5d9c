#!/usr/bin/env bash
# Builds the default VM image of the vm backend from Debian packages (no registry):
#   priv/vm/vmlinuz         the newest Debian 12 cloud kernel (linux-image-6.1.0-*-cloud-amd64)
#   priv/vm/initrd.img      newc cpio + gzip: busybox-static with its applet links in /bin,
#                           the guest agent (_build/vm/sbx-agent) as /init, and the virtio
#                           modules the agent loads (listed in /lib/modules/sandboxd.load)
#   priv/vm/kernel-release  the guest kernel's `uname -r`
#
#   scripts/vm-image.sh             the default image (make vm-image)
#   scripts/vm-image.sh --hostile   test inits instead of the agent (make vm-test-images):
#                                   _build/vm/test/initrd-hostile-{garbage,huge,silent}.img
#
# The kernel package is downloaded once per machine into $SBX_VM_CACHE (default
# /var/cache/sandboxd/vm, or ~/.cache/sandboxd/vm when that is not writable) and unpacked
# there. The initramfs is rebuilt only when its inputs changed (the agent binary, busybox,
# this script, the kernel): their checksum is kept in priv/vm/.inputs.
# The binaries come from guest/agent/Makefile (make vm-image builds them first).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

MODULES=(virtio_pci virtio_console virtio_net virtio_blk)

say() { echo "vm-image: $*"; }
die() { echo "vm-image: $*" >&2; exit 1; }

mode=default
case "${1:-}" in
  "") ;;
  --hostile) mode=hostile ;;
  *) echo "usage: $0 [--hostile]" >&2; exit 2 ;;
esac

cache=${SBX_VM_CACHE:-/var/cache/sandboxd/vm}
if ! mkdir -p "$cache" 2>/dev/null || [ ! -w "$cache" ]; then
  cache=$HOME/.cache/sandboxd/vm
  mkdir -p "$cache"
fi

# ---- the kernel package, once per machine ------------------------------------------------
kernel_dir() {
  local deb pkg
  deb=$(find "$cache" -maxdepth 1 -name 'linux-image-6.1.0-*-cloud-amd64_*.deb' | sort -V | tail -n 1)
  if [ -z "$deb" ]; then
    pkg=$(apt-cache search --names-only '^linux-image-6\.1\.0-[0-9]+-cloud-amd64$' 2>/dev/null |
          awk '{print $1}' | sort -V | tail -n 1)
    [ -n "$pkg" ] || die "no linux-image-6.1.0-*-cloud-amd64 package in apt's lists (apt-get update?)"
    say "downloading $pkg into $cache (once per machine)" >&2
    (cd "$cache" && apt-get download "$pkg" >/dev/null 2>&1) || die "apt-get download $pkg failed"
    deb=$(find "$cache" -maxdepth 1 -name "${pkg}_*.deb" | sort -V | tail -n 1)
    [ -n "$deb" ] || die "apt-get download $pkg left no .deb in $cache"
  fi
  local dir=${deb%.deb}
  if [ ! -d "$dir/boot" ]; then
    rm -rf "$dir.tmp"
    dpkg-deb -x "$deb" "$dir.tmp"
    mv "$dir.tmp" "$dir"
  fi
  echo "$dir"
}

# Several worktrees may build at once: one download and unpack at a time.
exec 9>"$cache/.lock"
flock 9
kdir=$(kernel_dir)
flock -u 9
vmlinuz=$(find "$kdir/boot" -name 'vmlinuz-*' | head -n 1)
[ -n "$vmlinuz" ] || die "no vmlinuz in $kdir/boot"
release=${vmlinuz##*/vmlinuz-}
moddir=$kdir/lib/modules/$release
[ -d "$moddir" ] || die "no modules for $release in $kdir"

busybox=/bin/busybox
[ -x "$busybox" ] && ! readelf -d "$busybox" 2>/dev/null | grep -q NEEDED ||
  die "busybox-static is not installed (scripts/deps.sh build)"
command -v cpio >/dev/null || die "cpio is not installed (scripts/deps.sh build)"

# Nothing to do when the inputs are those of the last build.
if [ "$mode" = hostile ]; then
  init=_build/vm/sbx-hostile
  out=_build/vm/test
  outputs=("$out"/initrd-hostile-{garbage,huge,silent}.img)
else
  init=_build/vm/sbx-agent
  out=priv/vm
  outputs=("$out/vmlinuz" "$out/initrd.img" "$out/kernel-release")
fi
[ -x "$init" ] || die "$init is missing (make vm-guest)"
inputs=$(cat "$init" "$busybox" "$0" "$vmlinuz" | sha256sum | cut -d' ' -f1)
uptodate=1
for f in "${outputs[@]}" "$out/.inputs"; do [ -f "$f" ] || uptodate=0; done
[ "$uptodate" = 1 ] && [ "$(cat "$out/.inputs")" = "$inputs" ] && exit 0

# ---- modules and their dependencies (the package has no modules.dep: read .modinfo) -----
declare -A modpath=()
while IFS= read -r f; do
  b=${f##*/}; b=${b%%.ko*}; modpath[${b//-/_}]=$f
done < <(find "$moddir/kernel" -name '*.ko' -o -name '*.ko.xz' -o -name '*.ko.zst')

# The .ko of a module, uncompressed, into $work/mod/<name>.ko; prints that path.
ko_file() {
  local name=$1 src=${modpath[$1]:-}
  [ -n "$src" ] || die "module $name is not in $release"
  local out=$work/mod/$name.ko
  if [ ! -f "$out" ]; then
    mkdir -p "$work/mod"
    case $src in
      *.ko.xz) xz -dc "$src" >"$out" ;;
      *.ko.zst) zstd -qdc "$src" >"$out" ;;
      *) cp "$src" "$out" ;;
    esac
  fi
  echo "$out"
}

declare -A seen=()
order=()
# Depth first: a module's dependencies come before it.
add_module() {
  local name=${1//-/_} dep deps ko
  [ -n "${seen[$name]:-}" ] && return 0
  seen[$name]=1
  ko=$(ko_file "$name")
  deps=$(objcopy -O binary --only-section=.modinfo "$ko" /dev/stdout 2>/dev/null |
         tr '\0' '\n' | sed -n 's/^depends=//p')
  for dep in ${deps//,/ }; do add_module "$dep"; done
  order+=("$name")
}

work=$(mktemp -d "${TMPDIR:-/tmp}/sbx-vm-image.XXXXXX")
trap 'rm -rf "$work"' EXIT
for m in "${MODULES[@]}"; do add_module "$m"; done

# A staged root: busybox and its links, the modules, /init.
stage() {
  local root=$1 init=$2
  mkdir -p "$root"/{bin,dev,proc,sys,tmp,run,root,etc,usr,lib/modules}
  ln -s bin "$root/sbin"
  ln -s ../bin "$root/usr/bin"
  ln -s ../bin "$root/usr/sbin"
  cp "$busybox" "$root/bin/busybox"
  local a
  for a in $("$busybox" --list); do
    [ "$a" = busybox ] || ln -s busybox "$root/bin/$a"
  done
  mkdir -p "$root/lib/modules/$release"
  : >"$root/lib/modules/sandboxd.load"
  for m in "${order[@]}"; do
    cp "$work/mod/$m.ko" "$root/lib/modules/$release/$m.ko"
    echo "/lib/modules/$release/$m.ko" >>"$root/lib/modules/sandboxd.load"
  done
  cp "$init" "$root/init"
  chmod 0755 "$root/init"
  echo "root:x:0:0:root:/root:/bin/sh" >"$root/etc/passwd"
  echo "root:x:0:" >"$root/etc/group"
  echo "$release" >"$root/etc/sandboxd-kernel-release"
}

# newc cpio, owned by root, gzip; written to a temporary name then moved into place.
pack() {
  local root=$1 out=$2
  mkdir -p "$(dirname "$out")"
  (cd "$root" && find . -mindepth 1 | LC_ALL=C sort |
     cpio --quiet -o -H newc -R 0:0 --reproducible) | gzip -6n >"$out.tmp"
  chmod 0644 "$out.tmp" # qemu reads it as the sandbox's uid, whatever the umask
  mv "$out.tmp" "$out"
}

if [ "$mode" = hostile ]; then
  for kind in garbage huge silent; do
    stage "$work/root-$kind" "$init"
    echo "$kind" >"$work/root-$kind/etc/hostile-mode"
    pack "$work/root-$kind" "$out/initrd-hostile-$kind.img"
  done
  echo "$inputs" >"$out/.inputs"
  say "test images in $out/ (kernel $release)"
  exit 0
fi

if [ -f "$out/initrd.img" ]; then
  say "rebuilding priv/vm (the agent or the script changed)"
else
  say "building the default VM image in priv/vm (kernel $release)"
fi
mkdir -p "$out"
stage "$work/root" "$init"
pack "$work/root" "$out/initrd.img"
cp "$vmlinuz" "$out/vmlinuz.tmp"
chmod 0644 "$out/vmlinuz.tmp"
mv "$out/vmlinuz.tmp" "$out/vmlinuz"
echo "$release" >"$out/kernel-release"
echo "$inputs" >"$out/.inputs"
say "priv/vm: vmlinuz, initrd.img ($(du -k "$out/initrd.img" | cut -f1) KiB, modules: ${order[*]}), kernel-release $release"
