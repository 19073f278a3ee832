#!/usr/bin/env bash
# Builds the pinned control-plane binaries from the Go module proxy and caches
# them by version under .cache/bins/:
#
#   .cache/bins/kubernetes-<KUBE_VERSION>/{kube-apiserver,kube-controller-manager,kubectl}
#   .cache/bins/etcd-<ETCD_VERSION>/etcd
#   .cache/bins/assets/   symlinks to all four: envtest's BinaryAssetsDirectory
#
# k8s.io/kubernetes cannot be built as a plain dependency: its go.mod requires
# every staging module (k8s.io/api, k8s.io/apiserver, ...) at v0.0.0 and points
# them at ./staging with replace directives that only apply inside its own
# repository. A small wrapper module replaces each of them with its published
# v0.<minor>.<patch> release instead. The list is read from the go.mod of the
# pinned release, so a version bump needs no edit here.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=versions.env
. "$root/hack/versions.env"

cache="$root/.cache/bins"
kube_dir="$cache/kubernetes-$KUBE_VERSION"
etcd_dir="$cache/etcd-$ETCD_VERSION"
assets="$cache/assets"
kube_bins=(kube-apiserver kube-controller-manager kubectl)

export CGO_ENABLED=0 GOFLAGS=-mod=mod GOTOOLCHAIN=local

log() { printf '[bins] %s\n' "$*"; }

stage_version() {
	# v1.36.3 -> v0.36.3: the version the staging modules are published at.
	printf 'v0.%s' "${KUBE_VERSION#v1.}"
}

write_kube_wrapper() {
	local dir=$1 gomod
	gomod=$(go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" |
		sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')
	[ -n "$gomod" ] || { log "cannot find go.mod of k8s.io/kubernetes@$KUBE_VERSION"; exit 1; }
	{
		echo "module wirespan.local/bins/kubernetes"
		echo
		echo "go $(go env GOVERSION | sed 's/^go//; s/^\([0-9]*\.[0-9]*\).*/\1/')"
		echo
		echo "require k8s.io/kubernetes $KUBE_VERSION"
		echo
		# Every requirement pinned at v0.0.0 is a staging module.
		awk '$2 == "v0.0.0" && $1 ~ /^k8s\.io\// { print $1 }' "$gomod" | sort -u |
			while read -r mod; do echo "replace $mod => $mod $(stage_version)"; done
	} >"$dir/go.mod"
	printf 'package bins\n' >"$dir/doc.go"
}

build_kubernetes() {
	if all_present "$kube_dir" "${kube_bins[@]}"; then
		log "kubernetes $KUBE_VERSION: cached in ${kube_dir#"$root"/}"
		return
	fi
	local work minor ldflags
	work="$cache/build/kubernetes-$KUBE_VERSION"
	mkdir -p "$work" "$kube_dir.tmp"
	write_kube_wrapper "$work"
	minor=$(echo "$KUBE_VERSION" | cut -d. -f2)
	ldflags="-s -w"
	# kubectl reports its client version from client-go, the servers from
	# component-base; without these both say v0.0.0-master.
	for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
		ldflags+=" -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
		ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
	done
	for bin in "${kube_bins[@]}"; do
		log "building $bin $KUBE_VERSION (first time: several minutes)..."
		local start=$SECONDS
		(cd "$work" && go build -trimpath -ldflags "$ldflags" -o "$kube_dir.tmp/$bin" "k8s.io/kubernetes/cmd/$bin")
		log "built $bin in $((SECONDS - start))s"
	done
	rm -rf "$kube_dir" && mv "$kube_dir.tmp" "$kube_dir"
}

build_etcd() {
	if all_present "$etcd_dir" etcd; then
		log "etcd $ETCD_VERSION: cached in ${etcd_dir#"$root"/}"
		return
	fi
	local work="$cache/build/etcd-$ETCD_VERSION" start=$SECONDS
	mkdir -p "$work" "$etcd_dir.tmp"
	printf 'module wirespan.local/bins/etcd\n\ngo 1.26\n\nrequire go.etcd.io/etcd/server/v3 %s\n' "$ETCD_VERSION" >"$work/go.mod"
	printf 'package bins\n' >"$work/doc.go"
	log "building etcd $ETCD_VERSION..."
	(cd "$work" && go build -trimpath -ldflags "-s -w" -o "$etcd_dir.tmp/etcd" go.etcd.io/etcd/server/v3)
	log "built etcd in $((SECONDS - start))s"
	rm -rf "$etcd_dir" && mv "$etcd_dir.tmp" "$etcd_dir"
}

all_present() {
	local dir=$1 bin
	shift
	for bin in "$@"; do [ -x "$dir/$bin" ] || return 1; done
}

link_assets() {
	mkdir -p "$assets"
	for bin in "${kube_bins[@]}"; do ln -sfn "$kube_dir/$bin" "$assets/$bin"; done
	ln -sfn "$etcd_dir/etcd" "$assets/etcd"
}

mkdir -p "$cache"
build_etcd
build_kubernetes
link_assets
log "ready: $("$assets/kubectl" version --client 2>/dev/null | head -n1); $("$assets/etcd" --version | head -n1)"
