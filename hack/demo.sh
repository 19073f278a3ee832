#!/usr/bin/env bash
# make demo: two real clusters on this machine, peered by ClusterPeer YAML
# applied with kubectl, and what Wirespan does between them, shown with real
# clients. A step that does not work makes the demo fail.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
LAB="$ROOT/bin/wirespan-lab"
KUBECTL="$ROOT/.cache/bins/assets/kubectl"
STATE="$ROOT/.lab"
failed=0

bold() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '\033[36m$ %s\033[0m\n' "$*"; "$@"; }
ok() { printf '\033[32mOK\033[0m %s\n' "$*"; }
fail() { printf '\033[31mFAILED\033[0m %s\n' "$*"; failed=1; }
kc() { "$LAB" kubeconfig "$1"; }

if [ -e "$STATE/state.json" ]; then
	bold "A lab is already up in $STATE; taking it down for a fresh demo"
	"$LAB" down
fi

bold "Bring up two clusters (real kube-apiserver, controller manager, kube-proxy, CoreDNS; nodes and pods are network namespaces)"
run "$LAB" up --clusters 2

bold "Before peering, a pod in c1 cannot reach a pod in c2"
c2_pod=$("$KUBECTL" --kubeconfig "$(kc c2)" get pod echo-0 -o jsonpath='{.status.podIP}')
if run "$LAB" exec c1 echo-0 -- "$STATE/bin/wirespan-lab" probe --timeout 1s tcp "$c2_pod:8080"; then
	fail "c1 reached c2 without Wirespan: the lab's clusters are not isolated"
else
	ok "no route between the clusters' pod networks, as it should be"
fi

bold "The ClusterPeer folder, as kept in Git: one manifest per cluster"
run ls "$STATE/gitops/clusterpeers"
run cat "$STATE/gitops/clusterpeers/c1.yaml"

bold "Apply the same folder to every cluster, as Flux or Argo CD would"
run "$LAB" apply "$STATE/gitops/clusterpeers"

bold "Each cluster's operator publishes its own pod and Service CIDRs"
for c in c1 c2; do
	for _ in $(seq 1 100); do
		role=$("$KUBECTL" --kubeconfig "$(kc $c)" get clusterpeer "$c" -o jsonpath='{.status.role}' 2>/dev/null || true)
		[ "$role" = Self ] && break
		sleep 0.1
	done
	run "$KUBECTL" --kubeconfig "$(kc $c)" get clusterpeers
	if [ "$role" = Self ]; then ok "$c publishes itself"; else fail "$c's operator did not publish its ClusterPeer status"; fi
done

bold "A pod in c1 reaches a pod in c2 by its IP, through the WireGuard tunnel"
if "$LAB" status --json | grep -q '"name": "c1-n0-wirespan-gateway"'; then
	c1_pod=$("$KUBECTL" --kubeconfig "$(kc c1)" get pod echo-1 -o jsonpath='{.status.podIP}')
	# echo-1 runs on c1's second node: its traffic goes to c1's gateway over
	# VXLAN first. The answer names the address c2's pod saw: echo-1's own.
	if reply=$("$LAB" exec c1 echo-1 -- "$STATE/bin/wirespan-lab" probe --timeout 3s tcp "$c2_pod:8080"); then
		echo "$reply"
		case "$reply" in
		*"client=$c1_pod"*) ok "cross-cluster pod traffic, and c2's pod saw c1's pod address ($c1_pod): no NAT" ;;
		*) fail "c2's pod saw another source address than $c1_pod: something translated it" ;;
		esac
	else
		fail "c1 could not reach $c2_pod in c2"
	fi
	for _ in $(seq 1 50); do
		connected=$("$KUBECTL" --kubeconfig "$(kc c1)" get clusterpeer c2 -o jsonpath='{.status.conditions[?(@.type=="Connected")].status}')
		[ "$connected" = True ] && break
		sleep 0.2
	done
	run "$KUBECTL" --kubeconfig "$(kc c1)" get clusterpeers -o wide
	wg_if=$("$LAB" status --json | grep -o '"wireGuard": "[^"]*"' | head -1 | cut -d'"' -f4)
	run "$LAB" exec c1 c1-n0 -- wg show "$wg_if"
	if [ "$connected" = True ]; then ok "c1 reports the tunnel to c2 Connected"; else fail "c1 does not report c2 Connected"; fi
else
	fail "the lab runs no wirespan-gateway on c1-n0: the lab is not the one this demo expects"
fi

bold "A pod in c1 resolves a service exported from c2: echo.default.svc.clusterset.local"
if "$KUBECTL" --kubeconfig "$(kc c1)" get crd serviceexports.multicluster.x-k8s.io >/dev/null 2>&1; then
	run "$KUBECTL" --kubeconfig "$(kc c2)" apply -f - <<-EOF
		apiVersion: multicluster.x-k8s.io/v1beta1
		kind: ServiceExport
		metadata: {name: echo, namespace: default}
	EOF
	answer=""
	for _ in $(seq 1 50); do
		answer=$("$LAB" exec c1 echo-0 -- dig +short echo.default.svc.clusterset.local || true)
		[ -n "$answer" ] && break
		sleep 0.1
	done
	run "$LAB" exec c1 echo-0 -- dig echo.default.svc.clusterset.local
	if [ -z "$answer" ]; then fail "echo.default.svc.clusterset.local did not resolve in c1"; fi
	ok "clusterset.local answers $answer"
	run "$KUBECTL" --kubeconfig "$(kc c1)" get serviceimports,services,endpointslices -n default
	run "$KUBECTL" --kubeconfig "$(kc c2)" get serviceexport echo -n default \
		-o jsonpath='{range .status.conditions[*]}{.type}={.status} ({.reason}){"\n"}{end}'
	# kube-proxy programs the new VIP within about a second.
	reply=""
	for _ in $(seq 1 30); do
		reply=$("$LAB" exec c1 echo-0 -- "$STATE/bin/wirespan-lab" probe --timeout 1s tcp "$answer:8080" 2>/dev/null || true)
		case "$reply" in *cluster=c2*) break ;; esac
		sleep 0.2
	done
	echo "  $reply"
	case "$reply" in
	*cluster=c2*) ok "a c1 pod reached c2's echo through the clusterset VIP $answer" ;;
	*) fail "the clusterset VIP $answer did not answer from c2" ;;
	esac
else
	fail "the Multi-Cluster Services CRDs are not installed in c1 (the lab installs them from the chart)"
fi

bold "The lab is still running"
cat <<EOF
  $LAB status                      # clusters, nodes, pods, processes, logs
  kubectl --kubeconfig \$($LAB kubeconfig c1) get nodes,pods,svc -A -o wide
  $LAB exec c1 echo-0 -- bash      # a shell in a pod (its resolv.conf points at CoreDNS)
  logs: $STATE/logs
  make demo-down                   # remove it all
EOF
if [ $failed -ne 0 ]; then
	printf '\n\033[31mThe demo FAILED: a step that should work did not (see above; logs in %s).\033[0m\n' "$STATE/logs"
	exit 1
fi
