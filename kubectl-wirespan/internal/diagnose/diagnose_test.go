package diagnose

import (
	"bytes"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	mcsv1beta1 "sigs.k8s.io/mcs-api/pkg/apis/v1beta1"

	wirespanv1alpha1 "github.com/wirespan/wirespan/apis/v1alpha1"
	"github.com/wirespan/wirespan/internal/golden"
	"github.com/wirespan/wirespan/kubectl-wirespan/internal/fixture"
	"github.com/wirespan/wirespan/kubectl-wirespan/internal/model"
)

const wrongKey = "OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk="

// everyCopy changes ClusterPeer name in every context, as a change in Git
// applied everywhere does.
func everyCopy(set *model.Clusterset, name string, change func(c *model.Cluster, p *wirespanv1alpha1.ClusterPeer)) {
	for i := range set.Clusters {
		c := &set.Clusters[i]
		change(c, c.Peer(name))
	}
}

func setCond(p *wirespanv1alpha1.ClusterPeer, typ string, st metav1.ConditionStatus, reason, msg string) {
	meta.SetStatusCondition(&p.Status.Conditions, metav1.Condition{Type: typ, Status: st, Reason: reason, Message: msg})
}

func tunnelDown(p *wirespanv1alpha1.ClusterPeer, reason string) {
	p.Status.Tunnel = nil
	setCond(p, wirespanv1alpha1.ConditionConnected, metav1.ConditionFalse, reason, "no handshake")
	setCond(p, wirespanv1alpha1.ConditionReady, metav1.ConditionFalse, wirespanv1alpha1.ReasonNotReady, "Connected is False")
}

// scenarios each break one thing, as the end-to-end tests do in the lab,
// and say which checks must then fail and which must warn.
var scenarios = []struct {
	name         string
	breakIt      func(*model.Clusterset)
	fail, warned []string
}{
	{name: "healthy", breakIt: func(*model.Clusterset) {}},
	{name: "wrong key in Git", fail: []string{"key-matches"}, warned: []string{"handshake"}, breakIt: func(s *model.Clusterset) {
		everyCopy(s, "c2", func(c *model.Cluster, p *wirespanv1alpha1.ClusterPeer) {
			p.Spec.PublicKey = wrongKey
			if c.Name() == "c2" {
				setCond(p, wirespanv1alpha1.ConditionKeyMatches, metav1.ConditionFalse, wirespanv1alpha1.ReasonKeyMismatch, "put "+fixture.Keys["c2"])
				for _, other := range []string{"c1", "c3"} {
					tunnelDown(c.Peer(other), wirespanv1alpha1.ReasonSelfKeyMismatch)
				}
				return
			}
			tunnelDown(p, wirespanv1alpha1.ReasonNoHandshake)
		})
	}},
	{name: "missing allowed range", fail: []string{"allowed-cidrs"}, breakIt: func(s *model.Clusterset) {
		everyCopy(s, "c2", func(c *model.Cluster, p *wirespanv1alpha1.ClusterPeer) {
			p.Spec.AllowedCIDRs = p.Spec.AllowedCIDRs[:1]
			setCond(p, wirespanv1alpha1.ConditionCIDRsAccepted, metav1.ConditionFalse, wirespanv1alpha1.ReasonOutsideAllowedCIDRs, "10.102.0.0/16")
		})
	}},
	{name: "overlap", fail: []string{"overlaps"}, breakIt: func(s *model.Clusterset) {
		everyCopy(s, "c3", func(c *model.Cluster, p *wirespanv1alpha1.ClusterPeer) {
			p.Spec.AllowedCIDRs = append(p.Spec.AllowedCIDRs, "10.2.0.0/24")
			p.Status.PodCIDRs = append(p.Status.PodCIDRs, "10.2.0.0/24")
			setCond(p, wirespanv1alpha1.ConditionCIDRConflict, metav1.ConditionTrue, wirespanv1alpha1.ReasonOverlap, "10.2.0.0/24 overlaps c2's 10.2.0.0/16")
		})
	}},
	{name: "stale handshake", fail: []string{"handshake"}, breakIt: func(s *model.Clusterset) {
		p := s.Clusters[0].Peer("c3")
		p.Status.Tunnel.LastHandshakeTime = &metav1.Time{Time: fixture.Now.Add(-10 * time.Minute)}
		setCond(p, wirespanv1alpha1.ConditionConnected, metav1.ConditionFalse, wirespanv1alpha1.ReasonNoHandshake, "last handshake 10m ago")
	}},
	{name: "CoreDNS block removed", fail: []string{"coredns-forward"}, breakIt: func(s *model.Clusterset) {
		c := &s.Clusters[1]
		c.Corefile, _, _ = strings.Cut(c.Corefile, "# wirespan: begin")
	}},
	{name: "CoreDNS forwards elsewhere", warned: []string{"coredns-forward"}, breakIt: func(s *model.Clusterset) {
		s.Clusters[1].Corefile = strings.ReplaceAll(s.Clusters[1].Corefile, "10.102.0.53", "192.168.2.10:5353")
	}},
	{name: "DNS endpoint missing", fail: []string{"dns-endpoint"}, breakIt: func(s *model.Clusterset) {
		s.Clusters[2].DNSSlices[0].Endpoints = nil
	}},
	{name: "export not imported", fail: []string{"exports-imported"}, breakIt: func(s *model.Clusterset) {
		s.Clusters[0].Imports = nil
	}},
	{name: "export conflict", warned: []string{"export-conflicts"}, breakIt: func(s *model.Clusterset) {
		e := &s.Clusters[1].Exports[0]
		meta.SetStatusCondition(&e.Status.Conditions, metav1.Condition{Type: string(mcsv1beta1.ServiceExportConditionConflict),
			Status: metav1.ConditionTrue, Reason: "PortConflict", Message: "ports differ from c1's export"})
	}},
	{name: "drifted ClusterPeer in one context", fail: []string{"git-drift"}, breakIt: func(s *model.Clusterset) {
		p := s.Clusters[2].Peer("c1")
		p.Spec.Endpoints = append(p.Spec.Endpoints, "192.168.1.11:51820")
	}},
	{name: "ClusterPeer missing in one context", fail: []string{"git-drift"}, breakIt: func(s *model.Clusterset) {
		c := &s.Clusters[2]
		c.Peers = slices.DeleteFunc(c.Peers, func(p wirespanv1alpha1.ClusterPeer) bool { return p.Name == "c1" })
	}},
	{name: "mixed versions", warned: []string{"versions"}, breakIt: func(s *model.Clusterset) {
		s.Clusters[1].GatewayLease.Annotations[wirespanv1alpha1.AnnotationVersion] = "v0.2.0"
	}},
	{name: "operator not running", fail: []string{"self-clusterpeer"}, breakIt: func(s *model.Clusterset) {
		for i := range s.Clusters[0].Peers {
			s.Clusters[0].Peers[i].Status = wirespanv1alpha1.ClusterPeerStatus{}
		}
	}},
	{name: "imports unreadable", warned: []string{"exports-imported"}, breakIt: func(s *model.Clusterset) {
		s.Clusters[0].Errors = map[string]string{model.ReadImports: "forbidden"}
	}},
}

func TestEachBreakFailsOnlyItsCheck(t *testing.T) {
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			set := fixture.Lab()
			sc.breakIt(&set)
			results := Run(set, Options{}, nil)
			failed, warned := map[string]bool{}, map[string]bool{}
			for _, r := range results {
				switch r.Status {
				case Fail:
					failed[r.Check] = true
				case Warn:
					warned[r.Check] = true
				}
				if r.Status != Pass && r.Status != Skip && (len(r.Evidence) == 0 || r.Hint == "") {
					t.Errorf("%s on %s is %s without evidence or hint: %+v", r.Check, r.Cluster, r.Status, r)
				}
			}
			if got := slices.Sorted(maps.Keys(failed)); !slices.Equal(got, sc.fail) {
				t.Errorf("failed checks = %v, want %v", got, sc.fail)
			}
			if got := slices.Sorted(maps.Keys(warned)); !slices.Equal(got, sc.warned) {
				t.Errorf("warned checks = %v, want %v", got, sc.warned)
			}
			if (Worst(results) == Fail) != (len(sc.fail) > 0) {
				t.Errorf("Worst = %s", Worst(results))
			}
		})
	}
}

func TestWrite(t *testing.T) {
	set := fixture.Lab()
	scenarios[1].breakIt(&set) // the wrong key: a FAIL and the WARNs it causes
	var out bytes.Buffer
	if err := Write(&out, Run(set, Options{}, nil), false); err != nil {
		t.Fatal(err)
	}
	golden.Check(t, "wrong-key.txt", out.String())
}

func TestOnlyNamedChecksRun(t *testing.T) {
	for _, r := range Run(fixture.Lab(), Options{}, []string{"handshake"}) {
		if r.Check != "handshake" {
			t.Errorf("ran %s", r.Check)
		}
	}
}

func TestDriftNeedsTwoContexts(t *testing.T) {
	set := fixture.Lab()
	set.Clusters = set.Clusters[:1]
	for _, r := range Run(set, Options{}, []string{"git-drift"}) {
		if r.Status != Skip {
			t.Errorf("git-drift with one context = %s, want SKIP", r.Status)
		}
	}
}
