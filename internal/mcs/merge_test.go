package mcs

import (
	"fmt"
	"reflect"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	mcsv1beta1 "sigs.k8s.io/mcs-api/pkg/apis/v1beta1"
)

func TestMergeEmpty(t *testing.T) {
	sameJSON(t, "Merge(nil)", Merge(nil), Import{})
}

func TestMergeSingle(t *testing.T) {
	imp := Merge([]Export{exp("c1", 0)})
	c := imp.Conflicts["c1"]
	if c.Conflicting() {
		t.Fatalf("a lone export conflicts: %+v", c)
	}
	cond := c.Condition(7)
	if cond.Type != "Conflict" || cond.Status != metav1.ConditionFalse || cond.Reason != "NoConflicts" || cond.ObservedGeneration != 7 {
		t.Errorf("Condition = %+v", cond)
	}
	contains(t, "message", cond.Message, "only export")
	if !slices.Equal(imp.Clusters, []string{"c1"}) || imp.Oldest != "c1" || imp.Service != svcName {
		t.Errorf("Import = %+v", imp)
	}
	if imp.Spec.IPs != nil {
		t.Errorf("Import has IPs: %v", imp.Spec.IPs)
	}
}

func TestMergeOldestWins(t *testing.T) {
	props := func(typ mcsv1beta1.ServiceImportType, label string) func(*Export) {
		return func(e *Export) {
			e.Type = typ
			e.Labels = map[string]string{"from": label}
			e.Annotations = map[string]string{"from": label}
			e.SessionAffinity = corev1.ServiceAffinityClientIP
			e.SessionAffinityConfig = &corev1.SessionAffinityConfig{ClientIP: &corev1.ClientIPConfig{TimeoutSeconds: ptr[int32](int32(len(label)))}}
			e.InternalTrafficPolicy = ptr(corev1.ServiceInternalTrafficPolicy(label))
			e.TrafficDistribution = ptr(label)
		}
	}
	tests := []struct {
		name    string
		exports []Export
		oldest  string
	}{
		{"oldest by creation", []Export{
			exp("a", 20, props(mcsv1beta1.ClusterSetIP, "a")),
			exp("b", 10, props(mcsv1beta1.Headless, "bb")),
			exp("c", 30, props(mcsv1beta1.ClusterSetIP, "ccc")),
		}, "b"},
		{"tie broken by the smaller cluster ID", []Export{
			exp("zeta", 10, props(mcsv1beta1.ClusterSetIP, "zeta")),
			exp("alpha", 10, props(mcsv1beta1.Headless, "alpha")),
			exp("beta", 5000, props(mcsv1beta1.ClusterSetIP, "beta")),
		}, "alpha"},
		{"creation beats cluster ID", []Export{
			exp("a", 11, props(mcsv1beta1.ClusterSetIP, "a")),
			exp("b", 10, props(mcsv1beta1.Headless, "b")),
		}, "b"},
		{"a backdated export first seen later loses", []Export{
			exp("a", 100, props(mcsv1beta1.ClusterSetIP, "a")),
			exp("b", 1, props(mcsv1beta1.Headless, "b"), func(e *Export) { e.NotBefore = at(200) }),
		}, "a"},
		{"a backdated export first seen as its rival was created loses the tie", []Export{
			exp("b", 100, props(mcsv1beta1.ClusterSetIP, "b")),
			exp("a", 1, props(mcsv1beta1.Headless, "a"), func(e *Export) { e.NotBefore = at(100) }),
		}, "b"},
		{"first seen together: creation decides", []Export{
			exp("a", 100, props(mcsv1beta1.ClusterSetIP, "a"), func(e *Export) { e.NotBefore = at(500) }),
			exp("b", 50, props(mcsv1beta1.Headless, "b"), func(e *Export) { e.NotBefore = at(500) }),
		}, "b"},
		{"first seen before its creation: creation counts", []Export{
			exp("a", 100, props(mcsv1beta1.ClusterSetIP, "a"), func(e *Export) { e.NotBefore = at(10) }),
			exp("b", 50, props(mcsv1beta1.Headless, "b")),
		}, "b"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			imp := Merge(tt.exports)
			if imp.Oldest != tt.oldest {
				t.Fatalf("Oldest = %q, want %q", imp.Oldest, tt.oldest)
			}
			var w Export
			for _, e := range tt.exports {
				if e.Cluster == tt.oldest {
					w = e
				}
			}
			spec := imp.Spec
			if spec.Type != w.Type || spec.SessionAffinity != w.SessionAffinity ||
				*spec.SessionAffinityConfig.ClientIP.TimeoutSeconds != *w.SessionAffinityConfig.ClientIP.TimeoutSeconds ||
				*spec.InternalTrafficPolicy != *w.InternalTrafficPolicy || *spec.TrafficDistribution != *w.TrafficDistribution ||
				imp.Labels["from"] != w.Labels["from"] || imp.Annotations["from"] != w.Annotations["from"] {
				t.Errorf("Import does not carry the properties of %s: %+v", tt.oldest, imp)
			}
			for _, c := range imp.Clusters {
				contains(t, c+"'s message", imp.Conflicts[c].Message, "oldest")
			}
		})
	}
}

func TestMergeConflicts(t *testing.T) {
	R := func(rs ...mcsv1beta1.ServiceExportConditionReason) []mcsv1beta1.ServiceExportConditionReason {
		return rs
	}
	v4, v6 := corev1.IPv4Protocol, corev1.IPv6Protocol
	tests := []struct {
		name    string
		newer   func(*Export) // applied to the newer of two exports
		older   func(*Export) // applied to the oldest, if set
		reasons []mcsv1beta1.ServiceExportConditionReason
		words   []string // in the newer export's message
	}{
		{"identical", func(*Export) {}, nil, nil, nil},
		{"type", func(e *Export) { e.Type = mcsv1beta1.Headless }, nil,
			R(mcsv1beta1.ServiceExportReasonTypeConflict), []string{`"ClusterSetIP"`, `"Headless"`}},
		{"port", withPorts(sp("http", "TCP", 8080)), nil,
			R(mcsv1beta1.ServiceExportReasonPortConflict), []string{`"http" 8080/TCP`, `"http" 80/TCP`}},
		{"IP family missing", func(e *Export) { e.IPFamilies = []corev1.IPFamily{v6} }, nil,
			R(mcsv1beta1.ServiceExportReasonIPFamilyConflict), []string{"[IPv4]", "[IPv6]"}},
		{"dual stack oldest, single stack newer", func(e *Export) { e.IPFamilies = []corev1.IPFamily{v4} },
			func(e *Export) { e.IPFamilies = []corev1.IPFamily{v4, v6} },
			R(mcsv1beta1.ServiceExportReasonIPFamilyConflict), []string{"[IPv4, IPv6]"}},
		{"headless: IP families say nothing", func(e *Export) { e.Type = mcsv1beta1.Headless; e.IPFamilies = []corev1.IPFamily{v4} },
			func(e *Export) { e.Type = mcsv1beta1.Headless; e.IPFamilies = []corev1.IPFamily{v4, v6} }, nil, nil},
		{"dual stack newer is reached over IPv4", func(e *Export) { e.IPFamilies = []corev1.IPFamily{v6, v4} }, nil, nil, nil},
		{"same families in another order", func(e *Export) { e.IPFamilies = []corev1.IPFamily{v6, v4} },
			func(e *Export) { e.IPFamilies = []corev1.IPFamily{v4, v6} }, nil, nil},
		{"session affinity", func(e *Export) { e.SessionAffinity = corev1.ServiceAffinityClientIP }, nil,
			R(mcsv1beta1.ServiceExportReasonSessionAffinityConflict), []string{`"None"`, `"ClientIP"`}},
		{"unset session affinity is None", func(e *Export) { e.SessionAffinity = "" }, nil, nil, nil},
		{"session affinity config", func(e *Export) {
			e.SessionAffinity = corev1.ServiceAffinityClientIP
			e.SessionAffinityConfig = &corev1.SessionAffinityConfig{ClientIP: &corev1.ClientIPConfig{TimeoutSeconds: ptr[int32](60)}}
		}, func(e *Export) { e.SessionAffinity = corev1.ServiceAffinityClientIP },
			R(mcsv1beta1.ServiceExportReasonSessionAffinityConfigConflict), []string{"10800s", "60s"}},
		{"unset session affinity config is the default", func(e *Export) {
			e.SessionAffinity = corev1.ServiceAffinityClientIP
			e.SessionAffinityConfig = &corev1.SessionAffinityConfig{ClientIP: &corev1.ClientIPConfig{TimeoutSeconds: ptr[int32](10800)}}
		}, func(e *Export) { e.SessionAffinity = corev1.ServiceAffinityClientIP }, nil, nil},
		{"internal traffic policy", func(e *Export) { e.InternalTrafficPolicy = ptr(corev1.ServiceInternalTrafficPolicyLocal) }, nil,
			R(mcsv1beta1.ServiceExportReasonInternalTrafficPolicyConflict), []string{`"Cluster"`, `"Local"`}},
		{"unset internal traffic policy is Cluster", func(e *Export) {
			e.InternalTrafficPolicy = ptr(corev1.ServiceInternalTrafficPolicyCluster)
		}, nil, nil, nil},
		{"traffic distribution", func(e *Export) { e.TrafficDistribution = ptr(corev1.ServiceTrafficDistributionPreferSameNode) }, nil,
			R(mcsv1beta1.ServiceExportReasonTrafficDistributionConflict), []string{"unset", `"PreferSameNode"`}},
		{"PreferClose is PreferSameZone", func(e *Export) { e.TrafficDistribution = ptr(corev1.ServiceTrafficDistributionPreferClose) },
			func(e *Export) { e.TrafficDistribution = ptr(corev1.ServiceTrafficDistributionPreferSameZone) }, nil, nil},
		{"labels", func(e *Export) { e.Labels = map[string]string{"dummy-label2": "true"} },
			func(e *Export) { e.Labels = map[string]string{"dummy-label": "true"} },
			R(mcsv1beta1.ServiceExportReasonLabelsConflict), []string{"exported labels"}},
		{"annotations", func(e *Export) { e.Annotations = map[string]string{"a": "1"} }, nil,
			R(mcsv1beta1.ServiceExportReasonAnnotationsConflict), []string{"exported annotations"}},
		{"empty and unset maps agree", func(e *Export) { e.Labels = map[string]string{} }, nil, nil, nil},
		{"several, in precedence order", func(e *Export) {
			e.Labels = map[string]string{"x": "y"}
			e.SessionAffinity = corev1.ServiceAffinityClientIP
			e.Type = mcsv1beta1.Headless
			e.Ports = []mcsv1beta1.ServicePort{sp("http", "UDP", 80)}
		}, nil, R(mcsv1beta1.ServiceExportReasonTypeConflict, mcsv1beta1.ServiceExportReasonPortConflict,
			mcsv1beta1.ServiceExportReasonSessionAffinityConflict, mcsv1beta1.ServiceExportReasonLabelsConflict),
			[]string{"Conflicting type, ports, session affinity, exported labels."}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			old := exp("old", 0)
			if tt.older != nil {
				tt.older(&old)
			}
			imp := Merge([]Export{exp("new", 1, tt.newer), old, exp("same", 2, tt.older)})
			for _, c := range []string{"old", "new", "same"} {
				got := imp.Conflicts[c]
				if !slices.Equal(got.Reasons, tt.reasons) {
					t.Errorf("%s: Reasons = %v, want %v (message %q)", c, got.Reasons, tt.reasons, got.Message)
				}
				cond := got.Condition(1)
				if len(tt.reasons) == 0 {
					if cond.Status != metav1.ConditionFalse || cond.Reason != "NoConflicts" {
						t.Errorf("%s: condition %+v", c, cond)
					}
					continue
				}
				// KEP-1645: the condition is set on all the Service's
				// exports, the oldest too.
				if cond.Status != metav1.ConditionTrue || cond.Reason != string(tt.reasons[0]) {
					t.Errorf("%s: condition %+v", c, cond)
				}
			}
			if len(tt.reasons) == 0 {
				return
			}
			contains(t, "newer export's message", imp.Conflicts["new"].Message, append(tt.words, `"old"`)...)
			if slices.Equal(tt.reasons, R(mcsv1beta1.ServiceExportReasonPortConflict)) {
				// Ports are won port by port: the message names the winners.
				for _, c := range []string{"old", "same"} {
					contains(t, c+"'s message", imp.Conflicts[c].Message, `kept over clashing ports of newer exports: "http" 80/TCP from cluster "old"`, "1 of 3")
				}
				return
			}
			contains(t, "oldest export's message", imp.Conflicts["old"].Message, "this export's", "1 of 3")
			contains(t, "agreeing export's message", imp.Conflicts["same"].Message, `"old"`, "the same as this export's", "1 of 3")
		})
	}
}

func TestMergePorts(t *testing.T) {
	type src = map[string]string
	tests := []struct {
		name     string
		exports  []Export // created in this order
		ports    []mcsv1beta1.ServicePort
		sources  []src
		clashing []string // clusters whose own ports clash
		words    []string // in the message of the first clashing cluster
	}{
		{"identical", []Export{exp("a", 0), exp("b", 1)},
			[]mcsv1beta1.ServicePort{sp("http", "TCP", 80)}, []src{{"a": "http", "b": "http"}}, nil, nil},
		{"protocol defaults to TCP", []Export{exp("a", 0), exp("b", 1, withPorts(sp("http", "", 80)))},
			[]mcsv1beta1.ServicePort{sp("http", "TCP", 80)}, []src{{"a": "http", "b": "http"}}, nil, nil},
		{"union, sorted by port", []Export{
			exp("a", 0, withPorts(sp("metrics", "TCP", 9090), sp("http", "TCP", 80))),
			exp("b", 1, withPorts(sp("dns", "UDP", 53), sp("http", "TCP", 80))),
		}, []mcsv1beta1.ServicePort{sp("dns", "UDP", 53), sp("http", "TCP", 80), sp("metrics", "TCP", 9090)},
			[]src{{"b": "dns"}, {"a": "http", "b": "http"}, {"a": "metrics"}}, nil, nil},
		{"same name, other number: oldest kept, both serve", []Export{
			exp("a", 0), exp("b", 1, withPorts(sp("http", "TCP", 8080))),
		}, []mcsv1beta1.ServicePort{sp("http", "TCP", 80)}, []src{{"a": "http", "b": "http"}},
			[]string{"b"}, []string{`this export's port "http" 8080/TCP clashes with "http" 80/TCP from cluster "a"`}},
		{"same name, other protocol: only the oldest serves", []Export{
			exp("a", 0), exp("b", 1, withPorts(sp("http", "UDP", 80))),
		}, []mcsv1beta1.ServicePort{sp("http", "TCP", 80)}, []src{{"a": "http"}}, []string{"b"}, []string{`"http" 80/UDP`}},
		{"same name, other appProtocol", []Export{
			exp("a", 0), exp("b", 1, withPorts(mcsv1beta1.ServicePort{Name: "http", Protocol: "TCP", Port: 80, AppProtocol: ptr("kubernetes.io/h2c")})),
		}, []mcsv1beta1.ServicePort{sp("http", "TCP", 80)}, []src{{"a": "http", "b": "http"}}, []string{"b"}, []string{"appProtocol kubernetes.io/h2c"}},
		{"same protocol and number, other name: both serve", []Export{
			exp("a", 0), exp("b", 1, withPorts(sp("web", "TCP", 80))),
		}, []mcsv1beta1.ServicePort{sp("http", "TCP", 80)}, []src{{"a": "http", "b": "web"}}, []string{"b"}, []string{`"web" 80/TCP`}},
		{"same number, other protocol: no clash", []Export{
			exp("a", 0, withPorts(sp("dns", "TCP", 53))), exp("b", 1, withPorts(sp("dns-udp", "UDP", 53))),
		}, []mcsv1beta1.ServicePort{sp("dns", "TCP", 53), sp("dns-udp", "UDP", 53)}, []src{{"a": "dns"}, {"b": "dns-udp"}}, nil, nil},
		{"name is matched before protocol and number", []Export{
			exp("a", 0, withPorts(sp("a", "TCP", 80))),
			// b's "b" would match a's port by number; its "a" matches it by name first.
			exp("b", 1, withPorts(sp("b", "TCP", 80), sp("a", "TCP", 81))),
		}, []mcsv1beta1.ServicePort{sp("a", "TCP", 80)}, []src{{"a": "a", "b": "a"}}, []string{"b"}, []string{`"a" 81/TCP`, `"b" 80/TCP`}},
		{"unnamed ports merge by their empty name", []Export{
			exp("a", 0, withPorts(sp("", "TCP", 80))), exp("b", 1, withPorts(sp("", "TCP", 80))),
		}, []mcsv1beta1.ServicePort{sp("", "TCP", 80)}, []src{{"a": "", "b": ""}}, nil, nil},
		{"two unnamed ports clash", []Export{
			exp("a", 0, withPorts(sp("", "TCP", 80))), exp("b", 1, withPorts(sp("", "UDP", 53))),
		}, []mcsv1beta1.ServicePort{sp("", "TCP", 80)}, []src{{"a": ""}}, []string{"b"}, []string{"unnamed 53/UDP", "unnamed 80/TCP"}},
		{"unnamed and named join", []Export{
			exp("a", 0, withPorts(sp("", "TCP", 80))), exp("b", 1, withPorts(sp("dns", "UDP", 53))),
		}, []mcsv1beta1.ServicePort{sp("dns", "UDP", 53), sp("", "TCP", 80)}, []src{{"b": "dns"}, {"a": ""}}, nil, nil},
		{"unnamed and named, same number: named newer serves", []Export{
			exp("a", 0, withPorts(sp("", "TCP", 80))), exp("b", 1, withPorts(sp("http", "TCP", 80))),
		}, []mcsv1beta1.ServicePort{sp("", "TCP", 80)}, []src{{"a": "", "b": "http"}}, []string{"b"}, nil},
		{"a newer export wins a port the oldest lacks", []Export{
			exp("a", 0),
			exp("b", 1, withPorts(sp("grpc", "TCP", 9090))),
			exp("c", 2, withPorts(sp("grpc", "TCP", 9091), sp("http", "TCP", 80))),
		}, []mcsv1beta1.ServicePort{sp("http", "TCP", 80), sp("grpc", "TCP", 9090)},
			[]src{{"a": "http", "c": "http"}, {"b": "grpc", "c": "grpc"}}, []string{"c"}, []string{`from cluster "b"`}},
		{"exports without ports", []Export{
			exp("a", 0, withPorts()), exp("b", 1, withPorts()),
		}, []mcsv1beta1.ServicePort{}, []src{}, nil, nil},
	}
	// The clusters that lack a port of the import, by case.
	lacking := map[string][]string{
		"union, sorted by port":                       {"a", "b"},
		"same number, other protocol: no clash":       {"a", "b"},
		"unnamed and named join":                      {"a", "b"},
		"a newer export wins a port the oldest lacks": {"a", "b"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			imp := Merge(tt.exports)
			sameJSON(t, "ports", imp.Spec.Ports, tt.ports)
			sameJSON(t, "sources", imp.PortSources, tt.sources)
			for _, e := range tt.exports {
				wantClash := slices.Contains(tt.clashing, e.Cluster)
				wantLack := slices.Contains(lacking[tt.name], e.Cluster)
				conflict := len(tt.clashing) > 0 || len(lacking[tt.name]) > 0
				clash := slices.Contains(imp.Conflicts[e.Cluster].Reasons, mcsv1beta1.ServiceExportReasonPortConflict)
				if clash != conflict {
					t.Errorf("%s: PortConflict %v, want %v", e.Cluster, clash, conflict)
				}
				switch {
				case wantClash:
					contains(t, e.Cluster+"'s message", imp.Conflicts[e.Cluster].Message, "this export's port")
				case wantLack:
					contains(t, e.Cluster+"'s message", imp.Conflicts[e.Cluster].Message, "this export lacks port")
				case clash:
					contains(t, e.Cluster+"'s message", imp.Conflicts[e.Cluster].Message, "exports that differ")
				}
			}
			if len(tt.clashing) > 0 {
				contains(t, "message", imp.Conflicts[tt.clashing[0]].Message, tt.words...)
			}
			for i := range imp.Spec.Ports {
				want := make([]string, 0, len(tt.sources[i]))
				for c := range tt.sources[i] {
					want = append(want, c)
				}
				slices.Sort(want)
				if got := imp.PortClusters(i); !slices.Equal(got, want) {
					t.Errorf("PortClusters(%d) = %v, want %v", i, got, want)
				}
			}
		})
	}
}

func TestMergeManyClashesShortened(t *testing.T) {
	var olds, news []mcsv1beta1.ServicePort
	for i := range int32(10) {
		olds = append(olds, sp(fmt.Sprintf("p%d", i), "TCP", 100+i))
		news = append(news, sp(fmt.Sprintf("p%d", i), "TCP", 200+i))
	}
	imp := Merge([]Export{exp("a", 0, withPorts(olds...)), exp("b", 1, withPorts(news...))})
	contains(t, "message", imp.Conflicts["b"].Message, "and 7 more")
}

// TestMergeOrderIndependent merges the same exports given in every order,
// with their ports in every rotation, and expects one result.
func TestMergeOrderIndependent(t *testing.T) {
	exports := []Export{
		exp("d", 5, withPorts(sp("grpc", "TCP", 9091), sp("http", "TCP", 80), sp("", "UDP", 53))),
		exp("b", 3, withPorts(sp("web", "TCP", 80), sp("grpc", "TCP", 9090)), func(e *Export) {
			e.Labels = map[string]string{"b": "1"}
		}),
		exp("c", 3, withPorts(sp("http", "UDP", 80), sp("admin", "TCP", 9090)), func(e *Export) {
			e.Type = mcsv1beta1.Headless
			e.IPFamilies = []corev1.IPFamily{corev1.IPv6Protocol}
		}),
		exp("a", 9, withPorts(sp("", "TCP", 53), sp("metrics", "TCP", 9100))),
	}
	want := Merge(exports)
	if want.Oldest != "b" {
		t.Fatalf("Oldest = %q, want b (tie with c at 3s, smaller ID)", want.Oldest)
	}
	n := 0
	permutations(len(exports), func(order []int) {
		for rot := range 3 {
			in := make([]Export, len(order))
			for i, j := range order {
				in[i] = exports[j]
				ps := slices.Clone(in[i].Ports)
				for range rot {
					if len(ps) > 0 {
						ps = append(ps[1:], ps[0])
					}
				}
				in[i].Ports = ps
			}
			if got := Merge(in); !reflect.DeepEqual(got, want) {
				sameJSON(t, "Merge of a permutation", got, want)
				t.FailNow()
			}
			n++
		}
	})
	if n != 72 {
		t.Errorf("tried %d orders", n)
	}
}

func TestMergeDuplicateCluster(t *testing.T) {
	imp := Merge([]Export{
		exp("a", 5, withPorts(sp("late", "TCP", 1))),
		exp("a", 1, withPorts(sp("early", "TCP", 1))),
	})
	if !slices.Equal(imp.Clusters, []string{"a"}) || imp.Spec.Ports[0].Name != "early" {
		t.Errorf("Import = %+v", imp)
	}
}

func TestMergeDoesNotAlias(t *testing.T) {
	in := []Export{exp("a", 0, func(e *Export) { e.Labels = map[string]string{"k": "v"} })}
	imp := Merge(in)
	in[0].Labels["k"] = "changed"
	in[0].Ports[0].Name = "changed"
	in[0].IPFamilies[0] = corev1.IPv6Protocol
	if imp.Labels["k"] != "v" || imp.Spec.Ports[0].Name != "http" || imp.Spec.IPFamilies[0] != corev1.IPv4Protocol {
		t.Errorf("Import changed with its input: %+v", imp)
	}
}

func TestMergePortWinnerNamed(t *testing.T) {
	imp := Merge([]Export{
		exp("a", 0),
		exp("b", 1, withPorts(sp("grpc", "TCP", 9090), sp("http", "TCP", 80))),
		exp("c", 2, withPorts(sp("grpc", "TCP", 9091), sp("http", "TCP", 80))),
	})
	// b declares every port and clashes with none: its message names the
	// winners (b itself for grpc, not the oldest), a lacks grpc, c clashes.
	contains(t, "b's message", imp.Conflicts["b"].Message, `kept over clashing ports of newer exports: "grpc" 9090/TCP from cluster "b"`, "2 of 3")
	contains(t, "a's message", imp.Conflicts["a"].Message, `this export lacks port "grpc" 9090/TCP (from cluster "b")`)
	contains(t, "c's message", imp.Conflicts["c"].Message, `this export's port "grpc" 9091/TCP clashes`)
}

// TestMergePortSetsDiffer: exports with different sets of ports make the
// union, and every export reports PortConflict, naming the ports it lacks
// (mcs-api conformance v0.5, "should expose the union of the constituent
// service ports and raise a conflict").
func TestMergePortSetsDiffer(t *testing.T) {
	imp := Merge([]Export{
		exp("a", 0),
		exp("b", 1, withPorts(sp("http", "TCP", 80), sp("stcp", "SCTP", 142))),
	})
	sameJSON(t, "ports", imp.Spec.Ports, []mcsv1beta1.ServicePort{sp("http", "TCP", 80), sp("stcp", "SCTP", 142)})
	for _, c := range []string{"a", "b"} {
		if got := imp.Conflicts[c].Condition(1); got.Status != metav1.ConditionTrue || got.Reason != string(mcsv1beta1.ServiceExportReasonPortConflict) {
			t.Errorf("%s: condition %+v, want PortConflict", c, got)
		}
	}
	contains(t, "a's message", imp.Conflicts["a"].Message, `this export lacks port "stcp" 142/SCTP (from cluster "b")`)
	contains(t, "b's message", imp.Conflicts["b"].Message, "declares every port of the import", "1 of 2")

	same := Merge([]Export{exp("a", 0), exp("b", 1)})
	if same.Conflicts["a"].Conflicting() || same.Conflicts["b"].Conflicting() {
		t.Errorf("equal port sets conflict: %+v", same.Conflicts)
	}
}
