package diagnose

import (
	"strings"
	"testing"

	wirespanv1alpha1 "github.com/wirespan/wirespan/apis/v1alpha1"
	"github.com/wirespan/wirespan/kubectl-wirespan/internal/fixture"
	"github.com/wirespan/wirespan/kubectl-wirespan/internal/model"
)

// unreported makes cluster i report no version, as a release from before
// the binaries did.
func unreported(s *model.Clusterset, i int) {
	c := &s.Clusters[i]
	c.Peer(c.Name()).Status.OperatorVersion = ""
	delete(c.GatewayLease.Annotations, wirespanv1alpha1.AnnotationVersion)
}

func TestVersions(t *testing.T) {
	for _, tc := range []struct {
		name    string
		breakIt func(s *model.Clusterset)
		want    []Status // per cluster, in context order
		// inEvidence must be in the evidence of the cluster that does not
		// pass (or, when all pass, of the first).
		inEvidence []string
		inSummary  string
	}{{
		name: "all the same", breakIt: func(*model.Clusterset) {},
		want: []Status{Pass, Pass, Pass}, inSummary: "operator v0.3.0, gateway c1-n0 v0.3.0",
		inEvidence: []string{"6 of the 6 components that report a version run v0.3.0"},
	}, {
		name: "one gateway upgraded",
		breakIt: func(s *model.Clusterset) {
			s.Clusters[1].GatewayLease.Annotations[wirespanv1alpha1.AnnotationVersion] = "v0.4.0"
		},
		want: []Status{Pass, Warn, Pass}, inSummary: "gateway c2-n0 v0.4.0",
		inEvidence: []string{"c2-admin: gateway c2-n0 runs v0.4.0", "5 of the 6 components that report a version run v0.3.0"},
	}, {
		name: "one operator behind",
		breakIt: func(s *model.Clusterset) {
			s.Clusters[2].Peer("c3").Status.OperatorVersion = "v0.2.0"
		},
		want: []Status{Pass, Pass, Warn}, inEvidence: []string{"c3-admin: operator runs v0.2.0"},
	}, {
		name:       "a cluster on a release that reports nothing",
		breakIt:    func(s *model.Clusterset) { unreported(s, 0) },
		want:       []Status{Warn, Pass, Pass},
		inEvidence: []string{"no operator version: the self ClusterPeer has no status.operatorVersion", "images: gateway=ghcr.io/wirespan/gateway:v0.3.0 operator=ghcr.io/wirespan/operator:v0.3.0"},
	}, {
		name:       "nothing reported anywhere: the images decide",
		breakIt:    func(s *model.Clusterset) { unreported(s, 0); unreported(s, 1); unreported(s, 2) },
		want:       []Status{Pass, Pass, Pass},
		inEvidence: nil, inSummary: "reports no version; images gateway=ghcr.io/wirespan/gateway:v0.3.0",
	}, {
		name: "nothing reported, images differ",
		breakIt: func(s *model.Clusterset) {
			unreported(s, 0)
			unreported(s, 1)
			unreported(s, 2)
			s.Clusters[1].Pods[1].Spec.Containers[0].Image = "ghcr.io/wirespan/gateway:v0.2.0"
		},
		want: []Status{Pass, Warn, Pass}, inEvidence: []string{"gateway=ghcr.io/wirespan/gateway:v0.2.0"},
	}, {
		name: "nothing reported and no pods (binaries outside pods)",
		breakIt: func(s *model.Clusterset) {
			for i := range s.Clusters {
				unreported(s, i)
				s.Clusters[i].Pods = nil
			}
		},
		want: []Status{Skip, Skip, Skip}, inSummary: "reports no version, and no Wirespan pods",
	}, {
		name: "no gateway active yet: the operator's version alone",
		breakIt: func(s *model.Clusterset) {
			s.Clusters[0].GatewayLease = nil
		},
		want: []Status{Pass, Pass, Pass}, inSummary: "operator v0.3.0 (no gateway version: no gateway Lease in --namespace",
	}, {
		name: "Lease unreadable",
		breakIt: func(s *model.Clusterset) {
			s.Clusters[0].GatewayLease = nil
			s.Clusters[0].Errors = map[string]string{model.ReadLease: `Lease wirespan-system/wirespan-gateway: leases.coordination.k8s.io "wirespan-gateway" is forbidden`}
		},
		want: []Status{Pass, Pass, Pass}, inSummary: "no gateway version: cannot read Lease wirespan-system/wirespan-gateway",
	}, {
		name: "a handover under way: no holder's version yet",
		breakIt: func(s *model.Clusterset) {
			s.Clusters[0].GatewayLease.Spec.HolderIdentity = nil
		},
		want: []Status{Pass, Pass, Pass}, inSummary: "the gateway Lease names no holder",
	}, {
		name: "one context compares its own operator with its gateway",
		breakIt: func(s *model.Clusterset) {
			s.Clusters = s.Clusters[:1]
			s.Clusters[0].GatewayLease.Annotations[wirespanv1alpha1.AnnotationVersion] = "v0.4.0"
		},
		// A tie between the two: the lower version is taken as the
		// clusterset's, so the upgraded gateway is named.
		want: []Status{Warn}, inEvidence: []string{"c1-admin: gateway c1-n0 runs v0.4.0", "1 of the 2 components"},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			set := fixture.Lab()
			tc.breakIt(&set)
			results := Run(set, Options{}, []string{"versions"})
			if len(results) != len(tc.want) {
				t.Fatalf("%d results, want %d: %+v", len(results), len(tc.want), results)
			}
			subject := results[0]
			for i, r := range results {
				if r.Status != tc.want[i] {
					t.Errorf("%s: %s (%s), want %s", r.Cluster, r.Status, r.Summary, tc.want[i])
				}
				if r.Status == Warn {
					subject = r
					if !strings.HasPrefix(r.Hint, "finish the rolling upgrade") {
						t.Errorf("%s: hint %q", r.Cluster, r.Hint)
					}
				}
			}
			ev := strings.Join(subject.Evidence, "\n")
			for _, want := range tc.inEvidence {
				if !strings.Contains(ev, want) {
					t.Errorf("%s's evidence lacks %q:\n%s", subject.Cluster, want, ev)
				}
			}
			if !strings.Contains(subject.Summary, tc.inSummary) {
				t.Errorf("%s's summary %q lacks %q", subject.Cluster, subject.Summary, tc.inSummary)
			}
		})
	}
}
