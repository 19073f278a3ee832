#!/usr/bin/env bash
# Makes sure the Debian packages the lab and the tests need are installed.
# Each command is looked up first; apt-get runs only when one is missing, so
# when everything is present this prints nothing and needs no root.
set -euo pipefail

# command:package
needs=(
	ip:iproute2
	nft:nftables
	dig:dnsutils
	ping:iputils-ping
	ps:procps
	pgrep:procps
	wg:wireguard-tools
	iperf3:iperf3
	dnsperf:dnsperf
	busybox:busybox-static
	setpriv:util-linux
	# kubectl wirespan graph -o svg, and its tests, run Graphviz.
	dot:graphviz
	# The VM tier (test/vm, hack/vm.sh): qemu boots a Debian kernel from an
	# initramfs built with cpio, depmod and busybox-static.
	qemu-system-x86_64:qemu-system-x86
	depmod:kmod
	cpio:cpio
)

log() { printf '[deps] %s\n' "$*"; }

missing=()
for need in "${needs[@]}"; do
	cmd=${need%%:*} pkg=${need#*:}
	# sbin folders may be missing from a non-login PATH.
	if ! PATH="$PATH:/usr/sbin:/sbin" command -v "$cmd" >/dev/null 2>&1; then
		case " ${missing[*]} " in *" $pkg "*) ;; *) missing+=("$pkg") ;; esac
	fi
done
# The guest's initramfs needs a static busybox; Debian's busybox package
# is dynamic, busybox-static replaces it.
if PATH="$PATH:/usr/sbin:/sbin" command -v busybox >/dev/null 2>&1 &&
	ldd "$(PATH="$PATH:/usr/sbin:/sbin" command -v busybox)" >/dev/null 2>&1; then
	missing+=(busybox-static)
fi
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
	log "missing: ${missing[*]}; installing them needs root. Run as root: make deps" >&2
	log "or by hand: sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
	exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
	log "missing: ${missing[*]}; no apt-get here (Debian or Ubuntu expected): install them by hand" >&2
	exit 1
fi

export DEBIAN_FRONTEND=noninteractive
apt_install() { apt-get install -y -q --no-install-recommends "${missing[@]}"; }
log "installing: ${missing[*]}"
if ! apt_install; then
	# Usually the package lists are missing (a slim image) or stale (a
	# version they name is gone from the mirror).
	log "install failed; updating the package lists and retrying"
	apt-get update -q
	apt_install || { log "apt-get could not install: ${missing[*]} (see its errors above)" >&2; exit 1; }
fi
log "installed: ${missing[*]}"
