#!/usr/bin/env bash
# Prepares the VM test tier's guest (test/vm, docs/development.md): a Debian
# kernel that has WireGuard, and an initramfs that boots it far enough to
# share the host's /usr, then runs what the host asks. Cached by kernel
# version:
#
#   .cache/vm/<kernel>/vmlinuz          the kernel
#   .cache/vm/<kernel>/modules/         its modules (lib/modules/<kernel>, depmod'ed),
#                                       shared read-only with the guest over 9p
#   .cache/vm/<kernel>/initramfs.gz     busybox-static, the 9p/virtio modules, /init
#
# The kernel is the one Debian's linux-image-amd64 currently depends on
# (VM_KERNEL=6.1.0-48-amd64 picks one), fetched with `apt-get download` and
# unpacked with `dpkg-deb -x` into the cache: nothing is installed into the
# host's /boot or /lib/modules. The last line printed is the cache folder.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
log() { printf '[vm] %s\n' "$*" >&2; }

for cmd in apt-get dpkg-deb depmod modprobe cpio busybox flock; do
	command -v "$cmd" >/dev/null || { log "$cmd is missing: run make deps"; exit 1; }
done

kernel=${VM_KERNEL:-}
if [ -z "$kernel" ]; then
	kernel=$(apt-cache depends linux-image-amd64 2>/dev/null |
		awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9]/ { sub("linux-image-", "", $2); print $2; exit }')
fi
if [ -z "$kernel" ]; then
	# No package lists (a slim image): fetch them once.
	apt-get update -q >&2
	kernel=$(apt-cache depends linux-image-amd64 |
		awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9]/ { sub("linux-image-", "", $2); print $2; exit }')
fi
[ -n "$kernel" ] || { log "cannot tell which kernel linux-image-amd64 depends on"; exit 1; }

dir="$root/.cache/vm/$kernel"
# One builder at a time: test processes running side by side wait here.
mkdir -p "$root/.cache/vm"
exec 9>"$root/.cache/vm/.lock"
flock 9
# The initramfs is rebuilt when this script or the guest's /init changes.
sum=$(cat "$root/hack/vm.sh" "$root/hack/vm-init.sh" | sha256sum | cut -c1-16)
if [ -f "$dir/ready" ] && [ "$(cat "$dir/initramfs.sum" 2>/dev/null)" = "$sum" ]; then
	echo "$dir"
	exit 0
fi

start=$SECONDS
work=$(mktemp -d "${TMPDIR:-/tmp}/wirespan-vm-build.XXXXXX")
trap 'rm -rf "$work"' EXIT
if [ ! -f "$dir/kernel.ready" ]; then
	log "fetching linux-image-$kernel (Debian's archive)..."
	# apt-get download writes into the current folder, as the _apt user
	# when it can; the folder is root's, so tell apt not to try.
	(cd "$work" && apt-get download -q -o APT::Sandbox::User=root "linux-image-$kernel" >&2)
	dpkg-deb -x "$work"/linux-image-"$kernel"_*.deb "$work/pkg"
	# Built beside its final name and renamed, so an interrupted run never
	# leaves a folder that looks complete.
	rm -rf "$dir.tmp" && mkdir -p "$dir.tmp/modules/lib"
	cp "$work/pkg/boot/vmlinuz-$kernel" "$dir.tmp/vmlinuz"
	mv "$work/pkg/lib/modules" "$dir.tmp/modules/lib/modules"
	depmod -b "$dir.tmp/modules" "$kernel"
	echo "$kernel" >"$dir.tmp/kernel.ready"
	rm -rf "$dir" && mv "$dir.tmp" "$dir"
fi
rm -f "$dir/ready"

# The initramfs: busybox under /bb (so that /bin, /lib and /sbin can point
# into the host's /usr once it is mounted), the modules that mounting it
# takes, in load order, and /init.
ir="$work/initramfs"
mkdir -p "$ir"/{bb,mods,proc,sys,dev,run,tmp,usr,work,guestmods,etc,var,root}
cp "$(command -v busybox)" "$ir/bb/busybox"
file -L "$ir/bb/busybox" 2>/dev/null | grep -q 'statically linked' ||
	ldd "$ir/bb/busybox" 2>&1 | grep -q 'not a dynamic' ||
	{ log "busybox is not static: install busybox-static (make deps)"; exit 1; }
for applet in sh mount mkdir ln insmod cat echo poweroff sleep; do ln -s busybox "$ir/bb/$applet"; done
for d in bin sbin lib lib64; do ln -s "usr/$d" "$ir/$d"; done
ln -s ../run "$ir/var/run"
cp /etc/ld.so.cache "$ir/etc/" 2>/dev/null || true
printf 'root:x:0:0:root:/root:/bin/sh\n' >"$ir/etc/passwd"
printf 'root:x:0:\n' >"$ir/etc/group"
printf '127.0.0.1 localhost\n::1 localhost\n' >"$ir/etc/hosts"
: >"$ir/mods/order"
for mod in virtio_pci 9pnet_virtio 9p; do
	modprobe -d "$dir/modules" -S "$kernel" --show-depends "$mod" | awk '$1 == "insmod" { print $2 }' |
		while read -r ko; do
			base=$(basename "$ko")
			grep -qx "$base" "$ir/mods/order" && continue
			cp "$ko" "$ir/mods/$base"
			echo "$base" >>"$ir/mods/order"
		done
done
cp "$root/hack/vm-init.sh" "$ir/init"
chmod +x "$ir/init"
(cd "$ir" && find . | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0) | gzip -1 >"$dir/initramfs.gz.tmp"
mv "$dir/initramfs.gz.tmp" "$dir/initramfs.gz"
echo "$sum" >"$dir/initramfs.sum"
echo "$kernel" >"$dir/ready"
log "linux $kernel and its initramfs are ready in ${dir#"$root"/} ($((SECONDS - start))s)"
echo "$dir"
