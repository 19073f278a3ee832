#!/bb/sh
# /init of the VM tier's guest (hack/vm.sh builds the initramfs, test/internal/vm
# boots it). It mounts what qemu shares over 9p:
#
#   hostusr    the host's /usr, read-only: its ip, nft, ss, ping, iperf3
#              and their libraries (/bin, /lib, /lib64, /sbin point into it)
#   guestmods  the guest kernel's modules, read-only, for modprobe
#   work       the test's folder: its binaries and the script `run`
#
# then runs /work/run and powers off. The host reads the script's exit
# status from /work/exit-status, and the console carries its output.
export PATH=/usr/sbin:/usr/bin:/bb

fail() {
	echo "wirespan-vm: $*"
	poweroff -f
}

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for ko in $(cat /mods/order); do
	insmod "/mods/$ko" || fail "insmod $ko"
done
p9="trans=virtio,version=9p2000.L,msize=262144,cache=loose"
mount -t 9p -o "$p9,ro" hostusr /usr || fail "mount the host's /usr"
mount -t 9p -o "$p9,ro" guestmods /guestmods || fail "mount the modules"
mount -t 9p -o "$p9" work /work || fail "mount the work folder"
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /tmp
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm

# The kernel loads modules on demand (a wireguard link, an nftables
# expression) through this program: the host's modprobe, over the guest
# kernel's module tree.
printf '#!/bb/sh\nexec /usr/sbin/modprobe -d /guestmods "$@"\n' >/bb/modprobe
chmod +x /bb/modprobe
echo /bb/modprobe >/proc/sys/kernel/modprobe
# Busybox's shell runs its own applets before anything on PATH, so the
# host's tools are named by path here, and the test's script runs under the
# host's shell. tun has no autoload trigger without a static /dev node.
/bb/modprobe tun || fail "modprobe tun"
/usr/sbin/ip link set lo up

cd /work || fail "no /work"
/usr/bin/sh /work/run
status=$?
echo "$status" >/work/exit-status
sync
echo "wirespan-vm: run exited with status $status"
poweroff -f
