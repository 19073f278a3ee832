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
	"k8s.io/utils/ptr"
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

// probeSees makes c's gateway answer that peer's endpoint udp, its last
// handshake at last: with no handshake since three minutes, nothing
// crosses the tunnel and no gossip comes from the peer.
func probeSees(c *model.Cluster, peer, udp string, last *time.Time) {
	a := c.Probe.Answer
	for i := range a.Peers {
		pp := &a.Peers[i]
		if pp.Name != peer {
			continue
		}
		pp.UDP, pp.UDPMessage, pp.LastHandshakeTime = udp, "probe: "+udp, nil
		if last != nil {
			pp.LastHandshakeTime = &metav1.Time{Time: *last}
		}
		if udp != wirespanv1alpha1.UDPAnswered {
			pp.PathMTU, pp.MTUMessage = 0, "no echo answered"
		}
	}
	for i := range a.Gossip {
		if m := &a.Gossip[i]; m.Cluster == peer && udp != wirespanv1alpha1.UDPAnswered {
			m.Present, m.LastAuthenticatedTime = false, &metav1.Time{Time: fixture.Now.Add(-10 * time.Minute)}
		}
	}
}

// peerProbeOf is c's gateway's answer about peer.
func peerProbeOf(c *model.Cluster, peer string) *wirespanv1alpha1.PeerProbe {
	return peerProbe(c.Probe.Answer, peer)
}

func setCond(p *wirespanv1alpha1.ClusterPeer, typ string, st metav1.ConditionStatus, reason, msg string) {
	meta.SetStatusCondition(&p.Status.Conditions, metav1.Condition{Type: typ, Status: st, Reason: reason, Message: msg})
}

// tunnelDown takes the tunnel from c to p down, as c's ClusterPeer status
// and its gateway's probe then show it.
func tunnelDown(c *model.Cluster, p *wirespanv1alpha1.ClusterPeer, reason string) {
	probeSees(c, p.Name, wirespanv1alpha1.UDPNoAnswer, nil)
	p.Status.Tunnel = nil
	setCond(p, wirespanv1alpha1.ConditionConnected, metav1.ConditionFalse, reason, "no handshake")
	setCond(p, wirespanv1alpha1.ConditionReady, metav1.ConditionFalse, wirespanv1alpha1.ReasonNotReady, "Connected is False")
}

// scenarios each break one thing, as the end-to-end tests do in the lab,
// and say which checks must then fail and which must warn.
type scenario struct {
	name         string
	breakIt      func(*model.Clusterset)
	fail, warned []string
	// hint is in the hint of every result that fails (else warns).
	hint string
}

var scenarios = []scenario{
	{name: "healthy", breakIt: func(*model.Clusterset) {}},
	{name: "wrong key in Git", fail: []string{"key-matches"}, warned: []string{"gossip-members", "handshake", "path-mtu"}, breakIt: func(s *model.Clusterset) {
		everyCopy(s, "c2", func(c *model.Cluster, p *wirespanv1alpha1.ClusterPeer) {
			p.Spec.PublicKey = wrongKey
			if c.Name() == "c2" {
				setCond(p, wirespanv1alpha1.ConditionKeyMatches, metav1.ConditionFalse, wirespanv1alpha1.ReasonKeyMismatch, "put "+fixture.Keys["c2"])
				for _, other := range []string{"c1", "c3"} {
					tunnelDown(c, c.Peer(other), wirespanv1alpha1.ReasonSelfKeyMismatch)
				}
				return
			}
			tunnelDown(c, p, wirespanv1alpha1.ReasonNoHandshake)
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
	{name: "stale handshake, endpoint silent", fail: []string{"handshake"}, warned: []string{"gossip-members", "path-mtu"}, hint: "open UDP 40123 from this cluster's gateways to 192.168.30.1",
		breakIt: func(s *model.Clusterset) { staleHandshake(s, wirespanv1alpha1.UDPNoAnswer, nil) }},
	{name: "stale handshake, endpoint port closed", fail: []string{"handshake"}, warned: []string{"gossip-members", "path-mtu"}, hint: "nothing listens on 192.168.30.1:40123",
		breakIt: func(s *model.Clusterset) { staleHandshake(s, wirespanv1alpha1.UDPRefused, nil) }},
	{name: "stale handshake, not probed", fail: []string{"handshake"}, hint: "check that the peer's endpoint in Git is right",
		breakIt: func(s *model.Clusterset) {
			staleHandshake(s, wirespanv1alpha1.UDPNoAnswer, nil)
			s.Clusters[0].Probe = nil
		}},
	{name: "stale handshake, nothing to send to", fail: []string{"handshake"}, warned: []string{"gossip-members", "path-mtu"}, hint: "check that the peer's endpoint in Git is right",
		breakIt: func(s *model.Clusterset) { staleHandshake(s, wirespanv1alpha1.UDPNotProbed, nil) }},
	{name: "handshake during the probe", warned: []string{"handshake"}, hint: "the peer answered during the probe",
		breakIt: func(s *model.Clusterset) {
			staleHandshake(s, wirespanv1alpha1.UDPAnswered, ptr.To(fixture.Now.Add(2*time.Second)))
		}},
	{name: "path MTU below the tunnel's", fail: []string{"path-mtu"}, hint: "lower the gateway nodes' interface MTU to 1480", breakIt: func(s *model.Clusterset) {
		peerProbeOf(&s.Clusters[0], "c2").PathMTU = 1400
	}},
	{name: "underlay path too small for full tunnel packets", fail: []string{"path-mtu"}, hint: "raise the underlay path MTU towards c1 to at least 1480",
		breakIt: func(s *model.Clusterset) {
			peerProbeOf(&s.Clusters[1], "c1").UnderlayMTU = 1450
		}},
	{name: "strict rp_filter on a link", fail: []string{"rp-filter"}, hint: "net.ipv4.conf.wirespan-vx.rp_filter=2", breakIt: func(s *model.Clusterset) {
		rp := &s.Clusters[1].Probe.Answer.ReversePath[1]
		rp.RPFilter, rp.Accepted, rp.Message = 1, false, "invalid source"
	}},
	{name: "reverse path not asked", warned: []string{"rp-filter"}, hint: "the gateway's log on node c2-n0", breakIt: func(s *model.Clusterset) {
		a := s.Clusters[1].Probe.Answer
		a.ReversePath, a.Warnings = nil, []string{"reverse-path filter not checked: wirespan-vx from 10.1.1.0/24: no such link"}
	}},
	{name: "gossip member absent over a live tunnel", fail: []string{"gossip-members"}, hint: "not gossip from c1", breakIt: func(s *model.Clusterset) {
		m := &s.Clusters[2].Probe.Answer.Gossip[0]
		m.Present, m.LastAuthenticatedTime = false, nil
	}},
	{name: "DNS answers NXDOMAIN", fail: []string{"dns-answer"}, hint: "see that gateway's log", breakIt: func(s *model.Clusterset) {
		d := &s.Clusters[0].Probe.Answer.DNS[0]
		d.RCode, d.Addresses = "NXDOMAIN", nil
	}},
	{name: "DNS name not reported by the gateway", warned: []string{"dns-answer"}, hint: "older than this plugin", breakIt: func(s *model.Clusterset) {
		s.Clusters[1].Probe.Answer.DNS = nil
	}},
	{name: "DNS answers another address", fail: []string{"dns-answer"}, breakIt: func(s *model.Clusterset) {
		s.Clusters[2].Probe.Answer.DNS[0].Addresses = []string{"10.103.200.9"}
	}},
	{name: "headless import answered without address", fail: []string{"dns-answer"}, breakIt: func(s *model.Clusterset) {
		c := &s.Clusters[1]
		c.Imports[0].Spec.Type, c.Imports[0].Spec.IPs = mcsv1beta1.Headless, nil
		c.Probe.Answer.DNS[0].Addresses = nil
	}},
	{name: "CoreDNS block removed", fail: []string{"coredns-forward"}, warned: []string{"dns-answer"}, breakIt: func(s *model.Clusterset) {
		c := &s.Clusters[1]
		c.Corefile, _, _ = strings.Cut(c.Corefile, "# wirespan: begin")
		d := &c.Probe.Answer.DNS[0]
		d.RCode, d.Addresses = "NXDOMAIN", nil
	}},
	{name: "CoreDNS forwards elsewhere", warned: []string{"coredns-forward"}, breakIt: func(s *model.Clusterset) {
		s.Clusters[1].Corefile = strings.ReplaceAll(s.Clusters[1].Corefile, "10.102.0.53", "192.168.2.10:5353")
	}},
	{name: "DNS endpoint missing", fail: []string{"dns-endpoint"}, warned: []string{"dns-answer"}, breakIt: func(s *model.Clusterset) {
		s.Clusters[2].DNSSlices[0].Endpoints = nil
		d := &s.Clusters[2].Probe.Answer.DNS[0]
		d.RCode, d.Addresses, d.Message = "SERVFAIL", nil, "forward: no healthy upstream"
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
	{name: "imports unreadable", warned: []string{"dns-answer", "exports-imported"}, breakIt: func(s *model.Clusterset) {
		s.Clusters[0].Errors = map[string]string{model.ReadImports: "forbidden"}
	}},
}

// staleHandshake makes c1's tunnel to c3 look down in its ClusterPeer
// status, and its gateway's probe answer udp with that last handshake.
func staleHandshake(s *model.Clusterset, udp string, last *time.Time) {
	c := &s.Clusters[0]
	p := c.Peer("c3")
	p.Status.Tunnel.LastHandshakeTime = &metav1.Time{Time: fixture.Now.Add(-10 * time.Minute)}
	setCond(p, wirespanv1alpha1.ConditionConnected, metav1.ConditionFalse, wirespanv1alpha1.ReasonNoHandshake, "last handshake 10m ago")
	probeSees(c, "c3", udp, last)
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
			for _, r := range results {
				if r.Status == Worst(results) && r.Status != Pass && !strings.Contains(r.Hint, sc.hint) {
					t.Errorf("%s on %s hints %q, want it to say %q", r.Check, r.Cluster, r.Hint, sc.hint)
				}
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

// TestWriteNodeChecks shows the node's checks failing, one break each in
// c1's answer, with -v: every evidence line and hint.
func TestWriteNodeChecks(t *testing.T) {
	set := fixture.Lab()
	for _, name := range []string{"stale handshake, endpoint port closed", "path MTU below the tunnel's", "DNS answers NXDOMAIN"} {
		i := slices.IndexFunc(scenarios, func(sc scenario) bool { return sc.name == name })
		scenarios[i].breakIt(&set)
	}
	var out bytes.Buffer
	if err := Write(&out, Run(set, Options{}, []string{"handshake", "path-mtu", "rp-filter", "gossip-members", "dns-answer"}), true); err != nil {
		t.Fatal(err)
	}
	golden.Check(t, "node-checks.txt", out.String())
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
