#!/usr/bin/env bash
# Builds the pinned Kubernetes, etcd, CoreDNS and Helm binaries from the Go module proxy and
# caches them by version under .cache/bins/:
#
#   .cache/bins/kubernetes-<KUBE_VERSION>/{kube-apiserver,kube-controller-manager,kubectl,kube-proxy}
#   .cache/bins/etcd-<ETCD_VERSION>/etcd
#   .cache/bins/coredns-<COREDNS_VERSION>/coredns
#   .cache/bins/helm-<HELM_VERSION>/helm
#   .cache/bins/assets/   symlinks to all of them: envtest's BinaryAssetsDirectory
#
# Each binary is built only when missing, so adding one to the list builds
# just that one.
#
# k8s.io/kubernetes cannot be built as a plain dependency: its go.mod requires
# every staging module (k8s.io/api, k8s.io/apiserver, ...) at v0.0.0 and points
# them at ./staging with replace directives that only apply inside its own
# repository. A small wrapper module replaces each of them with its published
# v0.<minor>.<patch> release instead. The list is read from the go.mod of the
# pinned release, so a version bump needs no edit here.
#
# etcd, CoreDNS and Helm have no such replace directives; they are built
# through a wrapper module that just requires them, which resolves to the
# versions their own go.mod lists.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=versions.env
. "$root/hack/versions.env"

cache="$root/.cache/bins"
kube_dir="$cache/kubernetes-$KUBE_VERSION"
etcd_dir="$cache/etcd-$ETCD_VERSION"
coredns_dir="$cache/coredns-$COREDNS_VERSION"
helm_dir="$cache/helm-$HELM_VERSION"
assets="$cache/assets"
kube_bins=(kube-apiserver kube-controller-manager kubectl kube-proxy)

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

# write_wrapper <dir> <name> <module> <version>: a module that only requires
# <module>@<version>.
write_wrapper() {
	local dir=$1
	mkdir -p "$dir"
	printf 'module wirespan.local/bins/%s\n\ngo 1.26\n\nrequire %s %s\n' "$2" "$3" "$4" >"$dir/go.mod"
	printf 'package bins\n' >"$dir/doc.go"
}

build_kubernetes() {
	local bin missing=()
	for bin in "${kube_bins[@]}"; do [ -x "$kube_dir/$bin" ] || missing+=("$bin"); done
	if [ ${#missing[@]} -eq 0 ]; then
		log "kubernetes $KUBE_VERSION: cached in ${kube_dir#"$root"/}"
		return
	fi
	local work minor ldflags
	work="$cache/build/kubernetes-$KUBE_VERSION"
	mkdir -p "$work" "$kube_dir"
	write_kube_wrapper "$work"
	minor=$(echo "$KUBE_VERSION" | cut -d. -f2)
	ldflags="-s -w"
	# kubectl reports its client version from client-go, the servers from
	# component-base; without these both say v0.0.0-master.
	for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
		ldflags+=" -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
		ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
	done
	for bin in "${missing[@]}"; do
		log "building $bin $KUBE_VERSION (first time: several minutes)..."
		local start=$SECONDS
		# Built beside its final name and renamed, so an interrupted build
		# never leaves a binary that looks complete.
		(cd "$work" && go build -trimpath -ldflags "$ldflags" -o "$kube_dir/$bin.tmp" "k8s.io/kubernetes/cmd/$bin")
		mv -f "$kube_dir/$bin.tmp" "$kube_dir/$bin"
		log "built $bin in $((SECONDS - start))s"
	done
}

# build_module NAME VERSION DIR MODULE LDFLAGS [NOTE [PACKAGE]]: a binary
# whose main package is PACKAGE (default: MODULE's root), built through a
# wrapper module pinning MODULE at VERSION.
build_module() {
	local name=$1 version=$2 dir=$3 module=$4 ldflags=$5 note=${6:-} pkg=${7:-$4}
	if all_present "$dir" "$name"; then
		log "$name $version: cached in ${dir#"$root"/}"
		return
	fi
	local work="$cache/build/$name-$version" start=$SECONDS
	mkdir -p "$dir.tmp"
	write_wrapper "$work" "$name" "$module" "$version"
	log "building $name $version$note..."
	(cd "$work" && go build -trimpath -ldflags "$ldflags" -o "$dir.tmp/$name" "$pkg")
	log "built $name in $((SECONDS - start))s"
	rm -rf "$dir" && mv "$dir.tmp" "$dir"
}

build_etcd() {
	build_module etcd "$ETCD_VERSION" "$etcd_dir" go.etcd.io/etcd/server/v3 "-s -w"
}

build_coredns() {
	# `coredns -version` prints CoreDNS-<x.y.z> from a constant in the source
	# and the commit from GitCommit; CoreDNS's Makefile sets that to
	# `git describe --dirty --always`, which for a release is its tag.
	build_module coredns "$COREDNS_VERSION" "$coredns_dir" github.com/coredns/coredns \
		"-s -w -X github.com/coredns/coredns/coremain.GitCommit=$COREDNS_VERSION" \
		" (default plugin.cfg: kubernetes, forward, template, cache, ...)"
}

build_helm() {
	# Helm's Makefile sets these for a release build; without them
	# `helm version` says v4.<minor> with "unreleased" metadata.
	local v=helm.sh/helm/v4/internal/version
	build_module helm "$HELM_VERSION" "$helm_dir" helm.sh/helm/v4 \
		"-s -w -X $v.version=$HELM_VERSION -X $v.metadata= -X $v.gitTreeState=clean" \
		" (the chart's lint and template tests)" helm.sh/helm/v4/cmd/helm
}

all_present() {
	local dir=$1 bin
	shift
	for bin in "$@"; do [ -x "$dir/$bin" ] || return 1; done
}

link_assets() {
	mkdir -p "$assets"
	# Relative links: the cache stays valid when its folder is moved,
	# copied or linked from another checkout.
	for bin in "${kube_bins[@]}"; do ln -sfn "../$(basename "$kube_dir")/$bin" "$assets/$bin"; done
	ln -sfn "../$(basename "$etcd_dir")/etcd" "$assets/etcd"
	ln -sfn "../$(basename "$coredns_dir")/coredns" "$assets/coredns"
	ln -sfn "../$(basename "$helm_dir")/helm" "$assets/helm"
}

mkdir -p "$cache"
build_etcd
build_kubernetes
build_coredns
build_helm
link_assets
log "ready: $("$assets/kubectl" version --client 2>/dev/null | head -n1); $("$assets/etcd" --version | head -n1); $("$assets/coredns" -version | head -n1); helm $("$assets/helm" version --template '{{.Version}}')"
