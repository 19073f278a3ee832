package chart

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"sigs.k8s.io/yaml"
)

const fullValues = "testdata/full-values.yaml"

func TestLint(t *testing.T) {
	for _, args := range [][]string{
		{"--set", "clusterID=east"},
		{"-f", fullValues},
	} {
		if out, err := helm(append([]string{"lint", "--strict", chartDir}, args...)...); err != nil {
			t.Errorf("helm lint --strict %v: %v\n%s", args, err, out)
		}
	}
	out, err := helm("lint", chartDir)
	if err == nil || !strings.Contains(out+err.Error(), "clusterID is required") {
		t.Errorf("helm lint without clusterID: %v\n%s", err, out)
	}
}

// appVersion is the chart's appVersion: the default image tag.
func appVersion(t *testing.T) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(chartDir, "Chart.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		AppVersion string `json:"appVersion"`
	}
	if err := yaml.Unmarshal(raw, &c); err != nil || c.AppVersion == "" {
		t.Fatalf("Chart.yaml appVersion: %q %v", c.AppVersion, err)
	}
	return c.AppVersion
}

func TestDefaultValues(t *testing.T) {
	r := render(t, "--set", "clusterID=east")
	want := map[string]int{
		"CustomResourceDefinition": 4, "Deployment": 1, "DaemonSet": 1, "ServiceAccount": 2, "ClusterRole": 2,
		// Role: the operator's, the gateway's and diagnose's (bound to
		// nobody).
		"ClusterRoleBinding": 2, "Role": 3, "RoleBinding": 2, "Service": 3, "PodDisruptionBudget": 1,
		"ValidatingAdmissionPolicy": 1, "ValidatingAdmissionPolicyBinding": 1,
	}
	if got := r.kinds(); !reflect.DeepEqual(got, want) {
		t.Errorf("kinds %v, want %v (no ServiceMonitor without its API, no CoreDNS Role without coredns.forward)", got, want)
	}
	for _, name := range []string{"clusterpeers.wirespan.io", "serviceexports.multicluster.x-k8s.io", "serviceimports.multicluster.x-k8s.io"} {
		crd := r.get("CustomResourceDefinition", name)
		if crd == nil || crd.GetAnnotations()["helm.sh/resource-policy"] != "keep" {
			t.Errorf("CRD %s missing or not kept on uninstall: %v", name, crd)
		}
	}

	var op appsv1.Deployment
	r.into(t, "Deployment", "wirespan-operator", &op)
	if *op.Spec.Replicas != 1 {
		t.Errorf("operator replicas %d", *op.Spec.Replicas)
	}
	c := op.Spec.Template.Spec.Containers[0]
	if c.Image != "ghcr.io/wirespan/wirespan-operator:"+appVersion(t) {
		t.Errorf("operator image %s", c.Image)
	}
	for _, arg := range []string{"--cluster-id=east", "--key-secret=wirespan-system/wirespan-cluster-key", "--leader-elect=true",
		"--leader-election-namespace=wirespan-system", "--coredns-configmap=", "--metrics-bind-address=:8080", "--health-probe-bind-address=:8081"} {
		if !slices.Contains(c.Args, arg) {
			t.Errorf("operator args %q lack %q", c.Args, arg)
		}
	}
	if hasPrefix(c.Args, "--coredns-forward") {
		t.Errorf("operator args %q forward CoreDNS without coredns.forward", c.Args)
	}
	if c.LivenessProbe.HTTPGet.Path != "/healthz" || c.ReadinessProbe.HTTPGet.Path != "/readyz" {
		t.Errorf("operator probes %+v %+v", c.LivenessProbe, c.ReadinessProbe)
	}
	pod := op.Spec.Template.Spec.SecurityContext
	sc := c.SecurityContext
	if !*pod.RunAsNonRoot || !*sc.ReadOnlyRootFilesystem || *sc.AllowPrivilegeEscalation ||
		!reflect.DeepEqual(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) > 0 {
		t.Errorf("operator security: pod %+v container %+v", pod, sc)
	}

	var gw appsv1.DaemonSet
	r.into(t, "DaemonSet", "wirespan-gateway", &gw)
	spec := gw.Spec.Template.Spec
	g := spec.Containers[0]
	if !spec.HostNetwork || spec.PriorityClassName != "system-node-critical" ||
		!reflect.DeepEqual(spec.Tolerations, []corev1.Toleration{{Operator: corev1.TolerationOpExists}}) {
		t.Errorf("gateway pod: hostNetwork %v, priority %q, tolerations %v", spec.HostNetwork, spec.PriorityClassName, spec.Tolerations)
	}
	gsc := g.SecurityContext
	if !reflect.DeepEqual(gsc.Capabilities.Add, []corev1.Capability{"NET_ADMIN"}) || !reflect.DeepEqual(gsc.Capabilities.Drop, []corev1.Capability{"ALL"}) ||
		*gsc.Privileged || *gsc.AllowPrivilegeEscalation || !*gsc.ReadOnlyRootFilesystem {
		t.Errorf("gateway security context %+v, capabilities %+v: want only NET_ADMIN, not privileged", gsc, gsc.Capabilities)
	}
	if len(g.Env) != 1 || g.Env[0].Name != "NODE_NAME" || g.Env[0].ValueFrom.FieldRef.FieldPath != "spec.nodeName" {
		t.Errorf("gateway env %+v: want NODE_NAME from spec.nodeName", g.Env)
	}
	for _, arg := range []string{"--cluster-id=east", "--wireguard=auto", "--dns-service=wirespan-system/wirespan-dns", "--sysctl-dir=/host/proc/sys", "--dns-bind-address=node:5353",
		"--metrics-bind-address=:9090", "--lease=wirespan-system/wirespan-gateway", "--lease-duration=1s", "--lease-renew-period=200ms"} {
		if !slices.Contains(g.Args, arg) {
			t.Errorf("gateway args %q lack %q", g.Args, arg)
		}
	}
	// state: the data plane the active gateway last applied (--state-file).
	wantVolumes := map[string]string{"proc-sys-net": "/proc/sys/net", "tun": "/dev/net/tun", "wireguard-sockets": "/var/run/wireguard", "state": "/var/lib/wirespan"}
	if got := hostPaths(spec); !reflect.DeepEqual(got, wantVolumes) {
		t.Errorf("gateway host paths %v, want %v", got, wantVolumes)
	}
	if tun := volume(spec, "tun"); tun == nil || *tun.HostPath.Type != corev1.HostPathCharDev {
		t.Errorf("tun volume %+v: want a CharDevice", tun)
	}
	if m := mountPath(g, "proc-sys-net"); m != "/host/proc/sys/net" {
		t.Errorf("/proc/sys/net mounted at %q, want /host/proc/sys/net (--sysctl-dir=/host/proc/sys)", m)
	}

	var dns corev1.Service
	r.into(t, "Service", "wirespan-dns", &dns)
	if len(dns.Spec.Selector) > 0 || len(dns.Spec.Ports) != 2 || dns.Spec.Ports[0].Protocol != corev1.ProtocolUDP ||
		dns.Spec.Ports[1].Protocol != corev1.ProtocolTCP || dns.Spec.Ports[0].Port != 53 || dns.Spec.Ports[0].TargetPort.IntValue() != 5353 {
		t.Errorf("DNS Service %+v: want no selector (the active gateway writes its endpoint), UDP and TCP 53", dns.Spec)
	}

	var role rbacv1.Role
	r.into(t, "Role", "wirespan-operator", &role)
	if !allows(role.Rules, "", "secrets", "create", "") || !allows(role.Rules, "", "secrets", "watch", "wirespan-cluster-key") ||
		allows(role.Rules, "", "secrets", "watch", "another-secret") {
		t.Errorf("operator Role %+v: want create on Secrets, and reads of the key Secret only", role.Rules)
	}
	var pdb policyv1.PodDisruptionBudget
	r.into(t, "PodDisruptionBudget", "wirespan-gateway", &pdb)
	if pdb.Spec.MinAvailable.IntValue() != 1 || pdb.Spec.MaxUnavailable != nil {
		t.Errorf("PDB %+v: want an integer minAvailable (all a DaemonSet's pods can have)", pdb.Spec)
	}
}

func TestFullValues(t *testing.T) {
	r := render(t, "-f", fullValues)
	if crds := r.kinds()["CustomResourceDefinition"]; crds != 2 || r.get("CustomResourceDefinition", "clusterpeers.wirespan.io") == nil ||
		r.get("CustomResourceDefinition", "proberequests.wirespan.io") == nil {
		t.Errorf("%d CRDs; want only Wirespan's (ClusterPeer, ProbeRequest) with crds.mcs=false", crds)
	} else if _, kept := r.get("CustomResourceDefinition", "clusterpeers.wirespan.io").GetAnnotations()["helm.sh/resource-policy"]; kept {
		t.Error("crds.keep=false still keeps the CRD")
	}

	var op appsv1.Deployment
	r.into(t, "Deployment", "wirespan-west-operator", &op)
	ps := op.Spec.Template.Spec
	c := ps.Containers[0]
	if *op.Spec.Replicas != 2 || c.Image != "registry.example/wirespan/operator:v9.9.9" || c.ImagePullPolicy != corev1.PullAlways ||
		ps.PriorityClassName != "system-cluster-critical" || ps.ImagePullSecrets[0].Name != "registry-credentials" ||
		ps.NodeSelector["node-role.kubernetes.io/control-plane"] != "" || len(ps.Tolerations) != 1 || ps.Affinity.PodAntiAffinity == nil ||
		op.Spec.Template.Labels["team"] != "network" || op.Spec.Template.Annotations["example.com/owner"] != "network-team" ||
		c.Resources.Limits.Cpu().String() != "500m" {
		t.Errorf("operator Deployment does not follow the values: %+v", op.Spec)
	}
	for _, arg := range []string{"--cluster-id=west-2", "--key-secret=wirespan-system/west-key", "--pod-cidrs=10.244.0.0/16",
		"--service-cidrs=10.96.0.0/12,fd00:10:96::/112", "--coredns-configmap=kube-system/coredns-custom",
		"--coredns-forward=10.0.0.53:1053", "--clusterset-zone=clusterset.example", "--metrics-bind-address=:18080",
		"--health-probe-bind-address=:18081", "--zap-log-level=debug", "--zap-devel"} {
		if !slices.Contains(c.Args, arg) {
			t.Errorf("operator args %q lack %q", c.Args, arg)
		}
	}
	var role rbacv1.Role
	r.into(t, "Role", "wirespan-west-operator", &role)
	if allows(role.Rules, "", "secrets", "create", "") || !allows(role.Rules, "", "secrets", "watch", "west-key") {
		t.Errorf("operator Role with clusterKey.existingSecret %+v: want reads of west-key and no create", role.Rules)
	}
	var coredns rbacv1.Role
	r.into(t, "Role", "wirespan-west-operator-coredns", &coredns)
	for _, verb := range []string{"list", "watch", "update"} {
		if coredns.Namespace != "kube-system" || !allows(coredns.Rules, "", "configmaps", verb, "coredns-custom") ||
			allows(coredns.Rules, "", "configmaps", verb, "other") {
			t.Errorf("CoreDNS Role %s/%s %+v: want %s on configmap coredns-custom only", coredns.Namespace, coredns.Name, coredns.Rules, verb)
		}
	}

	var gw appsv1.DaemonSet
	r.into(t, "DaemonSet", "wirespan-west-gateway", &gw)
	spec := gw.Spec.Template.Spec
	g := spec.Containers[0]
	for _, arg := range []string{"--wireguard=kernel", "--listen-port=51821", "--node-route-mode=direct", "--vxlan-port=4791",
		"--tunnel-cidr=100.97.0.0/16", "--tunnel-cidr-v6=fd77:1::/64", "--dns-bind-address=:5354", "--metrics-bind-address=127.0.0.1:19090", "--lease-duration=2s", "--lease-renew-period=500ms", "--dns-zone=clusterset.example",
		"--dns-service=wirespan-system/wirespan-west-dns", "--key-secret=wirespan-system/west-key", "--keepalive=15s", "--export-ttl=1m"} {
		if !slices.Contains(g.Args, arg) {
			t.Errorf("gateway args %q lack %q", g.Args, arg)
		}
	}
	if got := hostPaths(spec); !reflect.DeepEqual(got, map[string]string{"proc-sys-net": "/proc/sys/net", "state": "/var/lib/wirespan"}) {
		t.Errorf("kernel WireGuard: host paths %v, want only /proc/sys/net and the kept state (no TUN, no UAPI sockets)", got)
	}
	for _, p := range g.Ports {
		if p.Name == "vxlan" {
			t.Errorf("node route mode direct still opens the VXLAN port: %+v", g.Ports)
		}
	}
	if spec.NodeSelector["example.com/pool"] != "edge" || gw.Spec.UpdateStrategy.RollingUpdate.MaxUnavailable.IntValue() != 2 ||
		g.Image != "registry.example/wirespan/gateway:v9.9.9" || g.ImagePullPolicy != corev1.PullNever {
		t.Errorf("gateway DaemonSet does not follow the values: %+v", gw.Spec)
	}

	var dns corev1.Service
	r.into(t, "Service", "wirespan-west-dns", &dns)
	if dns.Spec.ClusterIP != "10.0.0.53" || dns.Spec.Ports[0].Port != 1053 || dns.Spec.Ports[0].TargetPort.IntValue() != 5354 {
		t.Errorf("DNS Service %+v", dns.Spec)
	}
	sm := r.get("ServiceMonitor", "wirespan-west")
	if sm == nil || sm.GetLabels()["release"] != "prometheus" || !strings.Contains(r.yaml, "interval: 15s") {
		t.Errorf("ServiceMonitor %v", sm)
	}
	var pdb policyv1.PodDisruptionBudget
	r.into(t, "PodDisruptionBudget", "wirespan-west-gateway", &pdb)
	if pdb.Spec.MinAvailable.IntValue() != 2 {
		t.Errorf("PDB minAvailable %v", pdb.Spec.MinAvailable)
	}
}

func TestCRDValues(t *testing.T) {
	if n := render(t, "--set", "clusterID=east", "--set", "crds.install=false").kinds()["CustomResourceDefinition"]; n != 0 {
		t.Errorf("crds.install=false renders %d CRDs", n)
	}
	if n := render(t, "--set", "clusterID=east", "--set", "crds.mcs=false").kinds()["CustomResourceDefinition"]; n != 2 {
		t.Errorf("crds.mcs=false renders %d CRDs, want Wirespan's only (ClusterPeer, ProbeRequest)", n)
	}
	// The chart ships exactly what `make generate` wrote: the template only
	// adds metadata.
	r := render(t, "--set", "clusterID=east")
	files, err := filepath.Glob(filepath.Join(chartDir, "files", "crds", "*.yaml"))
	if err != nil || len(files) != 4 {
		t.Fatalf("generated CRDs: %v %v", files, err)
	}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		objs, err := decode(string(raw))
		if err != nil || len(objs) != 1 {
			t.Fatalf("%s: %v", f, err)
		}
		gen := objs[0]
		got := r.get("CustomResourceDefinition", gen.GetName())
		if got == nil {
			t.Errorf("%s (%s) not rendered", gen.GetName(), f)
			continue
		}
		if !reflect.DeepEqual(got.Object["spec"], gen.Object["spec"]) {
			t.Errorf("rendered %s differs from %s in spec", gen.GetName(), f)
		}
		for k, v := range gen.GetLabels() {
			if got.GetLabels()[k] != v {
				t.Errorf("rendered %s lost label %s=%s", gen.GetName(), k, v)
			}
		}
	}
}

func TestServiceMonitorFollowsThePrometheusOperatorAPI(t *testing.T) {
	const api = "monitoring.coreos.com/v1/ServiceMonitor"
	for _, tc := range []struct {
		args []string
		want bool
	}{
		{nil, false},
		{[]string{"--api-versions", api}, true},
		{[]string{"--api-versions", api, "--set", "serviceMonitor.enabled=false"}, false},
		{[]string{"--set", "serviceMonitor.enabled=true"}, true},
	} {
		r := render(t, append([]string{"--set", "clusterID=east"}, tc.args...)...)
		if got := r.get("ServiceMonitor", "wirespan") != nil; got != tc.want {
			t.Errorf("%v: ServiceMonitor rendered %v, want %v", tc.args, got, tc.want)
		}
	}
	// "auto" asks a real API server, which serves the ServiceMonitor CRD.
	// helm then also refuses to render objects the server holds from
	// outside a release (the test control plane's CRDs, other tests'
	// objects): no CRDs, and a release of its own.
	out, err := helm("template", "probe", chartDir, "--namespace", "probe", "--set", "clusterID=east", "--set", "crds.install=false",
		"--dry-run=server", "--kubeconfig", env.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "kind: ServiceMonitor\n") {
		t.Error("serviceMonitor.enabled=auto renders no ServiceMonitor for an API server that has the CRD")
	}
}

func TestCoreDNSValues(t *testing.T) {
	r := render(t, "--set", "clusterID=east", "--set", "coredns.forward=10.0.0.1\\,10.0.0.2:5353")
	var op appsv1.Deployment
	r.into(t, "Deployment", "wirespan-operator", &op)
	args := op.Spec.Template.Spec.Containers[0].Args
	if !slices.Contains(args, "--coredns-forward=10.0.0.1,10.0.0.2:5353") || !slices.Contains(args, "--coredns-configmap=kube-system/coredns") {
		t.Errorf("coredns.forward as a string: args %q", args)
	}
	if r.get("Role", "wirespan-operator-coredns") == nil {
		t.Error("coredns.forward set, but no Role on the CoreDNS ConfigMap")
	}

	// cleanup: access and the flag, with nothing to forward, so that the
	// operator removes its block.
	r = render(t, "--set", "clusterID=east", "--set", "coredns.cleanup=true")
	r.into(t, "Deployment", "wirespan-operator", &op)
	args = op.Spec.Template.Spec.Containers[0].Args
	if !slices.Contains(args, "--coredns-configmap=kube-system/coredns") || !slices.Contains(args, "--coredns-forward=") ||
		r.get("Role", "wirespan-operator-coredns") == nil {
		t.Errorf("coredns.cleanup: args %q, Role %v", args, r.get("Role", "wirespan-operator-coredns"))
	}

	_, err := template("--set", "clusterID=east", "--set", "coredns.forward=10.0.0.1", "--set", "coredns.configMap=")
	if err == nil || !strings.Contains(err.Error(), "coredns.forward needs coredns.configMap") {
		t.Errorf("coredns.forward without coredns.configMap: %v", err)
	}
}

func TestDNSServiceDisabled(t *testing.T) {
	r := render(t, "--set", "clusterID=east", "--set", "dnsService.enabled=false")
	if r.get("Service", "wirespan-dns") != nil {
		t.Error("dnsService.enabled=false still renders the DNS Service")
	}
	var gw appsv1.DaemonSet
	r.into(t, "DaemonSet", "wirespan-gateway", &gw)
	if hasPrefix(gw.Spec.Template.Spec.Containers[0].Args, "--dns-service") {
		t.Errorf("gateway args %q name a DNS Service that is not there", gw.Spec.Template.Spec.Containers[0].Args)
	}
	var role rbacv1.Role
	r.into(t, "Role", "wirespan-gateway", &role)
	if allows(role.Rules, "", "services", "get", "wirespan-dns") {
		t.Errorf("gateway Role %+v still reads the DNS Service", role.Rules)
	}
}

// The schema refuses wrong types and names, and a missing clusterID,
// before anything renders; with schema validation off, the templates still
// require clusterID.
func TestValuesAreChecked(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "clusterID is required: set it to the ID of this cluster"},
		{[]string{"--set", "clusterID="}, "clusterID is required"},
		{[]string{"--set", "clusterID=East"}, "/clusterID"},
		{[]string{"--set", "clusterID=" + strings.Repeat("a", 64)}, "/clusterID"},
		{[]string{"--set", "clusterID=east", "--set", "gateway.listenPort=abc"}, "/gateway/listenPort"},
		{[]string{"--set", "clusterID=east", "--set", "gateway.listenPort=70000"}, "/gateway/listenPort"},
		{[]string{"--set", "clusterID=east", "--set", "crds.install=maybe"}, "/crds/install"},
		{[]string{"--set", "clusterID=east", "--set", "gateway.wireguard=wireguard-go"}, "/gateway/wireguard"},
		{[]string{"--set", "clusterID=east", "--set", "gatway.wireguard=kernel"}, "gatway"},
		{[]string{"--set", "clusterID=east", "--set-json", `operator.podCIDRs="10.0.0.0/8"`}, "/operator/podCIDRs"},
		{[]string{"--set", "clusterID=east", "--set", "operator.podCIDRs={10.0.0.0}"}, "/operator/podCIDRs/0"},
		{[]string{"--set", "clusterID=east", "--set", "operator.replicas=-1"}, "/operator/replicas"},
		{[]string{"--set", "clusterID=east", "--set", "serviceMonitor.enabled=sometimes"}, "/serviceMonitor/enabled"},
		{[]string{"--set", "clusterID=east", "--set", "coredns.configMap=coredns"}, "/coredns/configMap"},
		{[]string{"--set", "clusterID=east", "--set-json", "coredns.forward=53"}, "/coredns/forward"},
		{[]string{"--set", "clusterID=east", "--set-json", `gateway.nodeSelector={"a":1}`}, "/gateway/nodeSelector/a"},
		{[]string{"--skip-schema-validation"}, "clusterID is required: set it to the ID of this cluster"},
	} {
		_, err := template(tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: got %v, want an error with %q", tc.args, err, tc.want)
		}
	}
}

func hasPrefix(args []string, prefix string) bool {
	return slices.ContainsFunc(args, func(a string) bool { return strings.HasPrefix(a, prefix) })
}

func hostPaths(spec corev1.PodSpec) map[string]string {
	out := map[string]string{}
	for _, v := range spec.Volumes {
		if v.HostPath != nil {
			out[v.Name] = v.HostPath.Path
		}
	}
	return out
}

func volume(spec corev1.PodSpec, name string) *corev1.Volume {
	for i := range spec.Volumes {
		if spec.Volumes[i].Name == name {
			return &spec.Volumes[i]
		}
	}
	return nil
}

func mountPath(c corev1.Container, volume string) string {
	for _, m := range c.VolumeMounts {
		if m.Name == volume {
			return m.MountPath
		}
	}
	return ""
}

// allows reports whether rules allow verb on resource of group, for the
// object named name ("" for a verb that names no object, such as create).
func allows(rules []rbacv1.PolicyRule, group, resource, verb, name string) bool {
	for _, r := range rules {
		if slices.Contains(r.APIGroups, group) && slices.Contains(r.Resources, resource) && slices.Contains(r.Verbs, verb) &&
			(len(r.ResourceNames) == 0 || slices.Contains(r.ResourceNames, name)) {
			return true
		}
	}
	return false
}
