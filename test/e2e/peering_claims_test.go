package e2e

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// A cluster whose admin turns hostile, using only its own API server: c2
// gets Nodes whose podCIDRs are the cloud metadata range, c1's node
// network and part of c1's pod range. c2's operator publishes them, its
// gateway announces them, and c1 refuses each with its reason, counts it,
// routes none of them, and keeps routing c2's own ranges; c1's own range
// is not put in conflict. Removing the Nodes heals it.
func TestHostileClaimsAreRefused(t *testing.T) {
	waitConnected(t, 60*time.Second)
	c, h := shared.Clusters[0], shared.Clusters[1]
	gw := c.Nodes[0].Name
	nodeNet := netip.PrefixFrom(netip.MustParseAddr(c.Nodes[0].UnderlayIP), 24).Masked().String()
	ownPods := netip.MustParsePrefix(c.PodCIDRs[0])
	intoOwn := netip.PrefixFrom(ownPods.Addr().Next(), 24).Masked().String()
	hostile := map[string]string{ // claimed range -> the reason c1 refuses it for
		"169.254.169.0/24": "LinkLocal",
		nodeNet:            "NodeNetwork",
		intoOwn:            "OutsideAllowedCIDRs",
	}
	var manifests []string
	i := 0
	for claim := range hostile {
		manifests = append(manifests, fmt.Sprintf("apiVersion: v1\nkind: Node\nmetadata:\n  name: hostile-%d\nspec:\n  podCIDR: %s\n  podCIDRs: [%s]\n", i, claim, claim))
		i++
	}
	applyIn(t, h.Name, strings.Join(manifests, "---\n"))
	defer func() {
		for j := range i {
			kubectlIn(t, h.Name, "delete", "node", fmt.Sprintf("hostile-%d", j), "--ignore-not-found")
		}
	}()

	eventually(t, 60*time.Second, "c1 refuses every hostile claim", func() error {
		p, err := peerIn(t, c.Name, h.Name)
		if err != nil {
			return err
		}
		st, reason, msg := p.condition("CIDRsAccepted")
		if st != "False" || reason != "OutsideAllowedCIDRs" {
			return fmt.Errorf("CIDRsAccepted=%s (%s): %s", st, reason, msg)
		}
		for claim := range hostile {
			if !strings.Contains(msg, claim) {
				return fmt.Errorf("CIDRsAccepted does not name %s: %s", claim, msg)
			}
		}
		self, err := peerIn(t, c.Name, c.Name)
		if err != nil {
			return err
		}
		if st, reason, msg := self.condition("CIDRConflict"); st != "False" {
			return fmt.Errorf("c1's own ranges put in conflict by a refused claim: CIDRConflict=%s (%s): %s", st, reason, msg)
		}
		for _, node := range c.Nodes {
			routes := gatewayRoutes(t, c.Name, node.Name)
			for claim := range hostile {
				if strings.Contains(routes, claim) {
					return fmt.Errorf("%s routes the hostile %s:\n%s", node.Name, claim, routes)
				}
			}
			if !strings.Contains(routes, h.ServiceCIDRs[0]) {
				return fmt.Errorf("%s no longer routes c2's own %s:\n%s", node.Name, h.ServiceCIDRs[0], routes)
			}
		}
		metrics, err := inPod(c.Name, gw, "bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/9090; printf 'GET /metrics HTTP/1.0\\r\\n\\r\\n' >&3; cat <&3")
		if err != nil {
			return err
		}
		for _, reason := range hostile {
			line := fmt.Sprintf("wirespan_gateway_refused_cidrs{peer=%q,reason=%q} 1", h.Name, reason)
			if !strings.Contains(metrics, line) {
				return fmt.Errorf("metric %s missing:\n%s", line, grep(metrics, "wirespan_gateway_refused"))
			}
		}
		return nil
	})

	for j := range i {
		kubectlIn(t, h.Name, "delete", "node", fmt.Sprintf("hostile-%d", j))
	}
	eventually(t, 60*time.Second, "c2's claims accepted again", func() error {
		p, err := peerIn(t, c.Name, h.Name)
		if err != nil {
			return err
		}
		if st, reason, msg := p.condition("CIDRsAccepted"); st != "True" {
			return fmt.Errorf("CIDRsAccepted=%s (%s): %s", st, reason, msg)
		}
		return nil
	})
}
