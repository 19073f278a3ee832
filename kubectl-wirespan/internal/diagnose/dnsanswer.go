package diagnose

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	mcsv1beta1 "sigs.k8s.io/mcs-api/pkg/apis/v1beta1"

	wirespanv1alpha1 "github.com/wirespan/wirespan/apis/v1alpha1"
	"github.com/wirespan/wirespan/kubectl-wirespan/internal/model"
	"github.com/wirespan/wirespan/kubectl-wirespan/internal/status"
)

// checkDNSAnswer judges what the cluster DNS answered the gateway, as it
// answers a pod, for the clusterset name of each ServiceImport: NOERROR
// with the import's clusterset IPs (a headless import: some address).
// Pods reach Wirespan's DNS server through CoreDNS's forward and the DNS
// Service's endpoint, so where coredns-forward or dns-endpoint fails, a
// wrong answer is theirs.
func checkDNSAnswer(in *input) []Result {
	upstream := map[string]string{} // cluster → the failing check its answers go through
	for _, c := range []struct {
		name string
		run  func(*input) []Result
	}{{"dns-endpoint", checkDNSEndpoint}, {"coredns-forward", checkCoreDNS}} {
		for _, r := range c.run(in) {
			if r.Status == Fail {
				upstream[r.Cluster] = c.name + " (" + r.Summary + ")"
			}
		}
	}
	return in.eachSelf(func(c *model.Cluster, self *wirespanv1alpha1.ClusterPeer, _ status.Cluster) Result {
		if bad := unreadable(c, model.ReadImports); bad != nil {
			return *bad
		}
		if len(c.Imports) == 0 {
			return Result{Status: Skip, Summary: "nothing is imported here: no clusterset name to ask"}
		}
		a, res := probed(c)
		if res != nil {
			return *res
		}
		zone := in.opts.Zone
		var bad, caused, unanswered, good []string
		for _, name := range c.Probe.Spec.DNSNames {
			i := slices.IndexFunc(c.Imports, func(si mcsv1beta1.ServiceImport) bool { return model.ProbeDNSName(&si, zone) == name })
			j := slices.IndexFunc(a.DNS, func(d wirespanv1alpha1.DNSProbe) bool { return d.Name == name })
			if i < 0 {
				continue // asked for an import read with another --zone: cannot happen in one run
			}
			si := &c.Imports[i]
			if j < 0 {
				unanswered = append(unanswered, fmt.Sprintf("%s: %s: gateway %s reported nothing for it", c.Context, name, a.Node))
				continue
			}
			line, wrong := judgeDNS(c.Context, si, &a.DNS[j])
			switch {
			case wrong == "":
				good = append(good, line)
			case si.Spec.Type == mcsv1beta1.ClusterSetIP && len(si.Spec.IPs) == 0:
				caused = append(caused, line+": "+wrong+"; caused by exports-imported (ServiceImport "+si.Namespace+"/"+si.Name+" has no clusterset IP yet)")
			default:
				bad = append(bad, line+": "+wrong)
			}
		}
		if n := len(model.ProbeDNSNames(c.Imports, zone)); len(c.Imports) > n {
			good = append(good, fmt.Sprintf("%s: asked the first %d of %d names (sorted): a ProbeRequest asks %d at most", c.Context, n, len(c.Imports), model.MaxProbeDNSNames))
		}
		if cause := upstream[self.Name]; len(bad) > 0 && cause != "" {
			for i := range bad {
				bad[i] += "; caused by " + cause
			}
			caused, bad = append(bad, caused...), nil
		}
		switch {
		case len(bad) > 0:
			return Result{Status: Fail, Summary: "the cluster DNS does not answer some clusterset names as their ServiceImports say",
				Evidence: slices.Concat(bad, caused, unanswered, good),
				Hint: "pods ask CoreDNS, which forwards " + zone + " to Wirespan's DNS Service, whose active gateway answers from the ServiceImports: " +
					"see that gateway's log and its wirespan_dns_queries_total by rcode, and ask from a pod (kubectl run -it --rm dnstest --image=busybox -- nslookup <name>)"}
		case len(caused) > 0:
			return Result{Status: Warn, Summary: "some clusterset names do not resolve, for a cause another check reports", Evidence: slices.Concat(caused, unanswered, good),
				Hint: "fix what the named check reports"}
		case len(unanswered) > 0:
			// No answer says nothing about the DNS: never a failure.
			return Result{Status: Warn, Summary: "gateway " + a.Node + " reported no DNS answer for some names asked", Evidence: slices.Concat(unanswered, good),
				Hint: "a gateway older than this plugin may not look names up (see versions); else see its log"}
		}
		return Result{Status: Pass, Summary: fmt.Sprintf("the cluster DNS answers every clusterset name asked (%s), as their ServiceImports say", counted(len(c.Probe.Spec.DNSNames), "name")),
			Evidence: good}
	})
}

// judgeDNS describes one answer and says what is wrong with it, or "".
func judgeDNS(context string, si *mcsv1beta1.ServiceImport, d *wirespanv1alpha1.DNSProbe) (line, wrong string) {
	rcode := d.RCode
	if rcode == "" {
		rcode = "no answer"
	}
	addrs := "no address"
	if len(d.Addresses) > 0 {
		addrs = strings.Join(d.Addresses, ", ")
	}
	line = fmt.Sprintf("%s: %s from %s: %s, %s", context, d.Name, d.Server, rcode, addrs)
	if d.Message != "" {
		line += " (" + oneLine(d.Message) + ")"
	}
	switch {
	case d.RCode != "NOERROR":
		return line, "want NOERROR"
	case si.Spec.Type == mcsv1beta1.Headless:
		if len(d.Addresses) == 0 {
			return line, "a headless import answers with some address, and this has none"
		}
		return line, ""
	}
	var lack []string
	for _, ip := range si.Spec.IPs {
		if !slices.ContainsFunc(d.Addresses, func(a string) bool { return sameAddr(a, ip) }) {
			lack = append(lack, ip)
		}
	}
	if len(si.Spec.IPs) == 0 {
		return line, "the ServiceImport has no clusterset IP to answer with"
	}
	if len(lack) > 0 {
		return line, "lacks ServiceImport " + si.Namespace + "/" + si.Name + "'s clusterset IPs " + strings.Join(lack, ", ")
	}
	return line, ""
}

// sameAddr compares two IP addresses as addresses (::ffff:a.b.c.d and
// a.b.c.d, zero-compressed forms), else as text.
func sameAddr(a, b string) bool {
	x, errA := netip.ParseAddr(a)
	y, errB := netip.ParseAddr(b)
	if errA != nil || errB != nil {
		return a == b
	}
	return x.Unmap() == y.Unmap()
}
