package mcs

import (
	"slices"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	mcsv1beta1 "sigs.k8s.io/mcs-api/pkg/apis/v1beta1"

	"github.com/wirespan/wirespan/apis/v1alpha1"
)

// MaxEndpointsPerSlice bounds the endpoints of one imported EndpointSlice,
// as the EndpointSlice controller bounds its own by default.
const MaxEndpointsPerSlice = 100

// The objects an importing cluster creates for an Import, all in the
// exported Service's namespace and named after its ServiceImport:
//
//	ServiceImport <name>               spec and status.clusters of the import
//	Service mcs-<name>-<hash>          ClusterSetIP only: holds the clusterset IP
//	EndpointSlices mcs-<name>-<cluster>-<hash>-v4-<n>
//	                                   the endpoints, one source cluster each
//
// kube-proxy programs the derived Service like any selector-less Service,
// from the EndpointSlices labeled kubernetes.io/service-name with its
// name. The caller sets owner references (KEP-1645: EndpointSlices are
// owned by their ServiceImport) and the ServiceImport's IPs.

// ServiceImport returns the ServiceImport for imp, without spec.ips: the
// caller copies them from the derived Service's clusterIPs (a Headless
// import has none). Its labels and annotations are the exported ones, plus
// app.kubernetes.io/managed-by=wirespan, which wins over an exported label
// of that key: the object is Wirespan's.
func ServiceImport(imp Import, namespace, name string) *mcsv1beta1.ServiceImport {
	labels := cloneMap(imp.Labels)
	if labels == nil {
		labels = map[string]string{}
	}
	labels[v1alpha1.LabelManagedBy] = v1alpha1.ManagedByValue
	si := &mcsv1beta1.ServiceImport{
		ObjectMeta: metav1.ObjectMeta{
			Name:        name,
			Namespace:   namespace,
			Labels:      labels,
			Annotations: cloneMap(imp.Annotations),
		},
		Spec: *imp.Spec.DeepCopy(),
		Status: mcsv1beta1.ServiceImportStatus{
			// Wirespan always writes EndpointSlice objects for imports.
			EndpointSliceObjects: mcsv1beta1.EndpointSliceObjectsPresent,
		},
	}
	si.Spec.IPs = nil
	for _, c := range imp.Clusters {
		si.Status.Clusters = append(si.Status.Clusters, mcsv1beta1.ClusterStatus{Cluster: c})
	}
	return si
}

// DerivedService returns the selector-less ClusterIP Service that gives a
// ClusterSetIP import its clusterset IP, named DerivedServiceName(name);
// nil for a Headless import, which has none. Its ports are the import's,
// named by portNames. IP family policy is PreferDualStack for two
// families, SingleStack for one, unset (the cluster's default) for none.
// Session affinity config and internal traffic policy are written with
// the API server's defaults, so that a created Service reads back equal.
//
// The import's internal traffic policy is copied as KEP-1645 asks; note
// that "Local" keeps only endpoints on the client's own node, and imported
// endpoints name no node, so such a service takes no traffic here.
func DerivedService(imp Import, namespace, name string) *corev1.Service {
	if imp.Spec.Type != mcsv1beta1.ClusterSetIP {
		return nil
	}
	names := portNames(imp.Spec.Ports)
	ports := make([]corev1.ServicePort, len(imp.Spec.Ports))
	for i, p := range imp.Spec.Ports {
		ports[i] = corev1.ServicePort{
			Name:        names[i],
			Protocol:    p.Protocol,
			AppProtocol: clonePtr(p.AppProtocol),
			Port:        p.Port,
			// Unused without a selector; set to the API default so the
			// stored object reads back equal.
			TargetPort: intstr.FromInt32(p.Port),
		}
	}
	spec := corev1.ServiceSpec{
		Type:                  corev1.ServiceTypeClusterIP,
		Ports:                 ports,
		SessionAffinity:       imp.Spec.SessionAffinity,
		IPFamilies:            slices.Clone(imp.Spec.IPFamilies),
		InternalTrafficPolicy: ptr(corev1.ServiceInternalTrafficPolicyCluster),
		TrafficDistribution:   clonePtr(imp.Spec.TrafficDistribution),
	}
	if p := imp.Spec.InternalTrafficPolicy; p != nil && *p != "" {
		spec.InternalTrafficPolicy = ptr(*p)
	}
	if spec.SessionAffinity == corev1.ServiceAffinityClientIP {
		timeout := corev1.DefaultClientIPServiceAffinitySeconds
		if c := imp.Spec.SessionAffinityConfig; c != nil && c.ClientIP != nil && c.ClientIP.TimeoutSeconds != nil {
			timeout = *c.ClientIP.TimeoutSeconds
		}
		spec.SessionAffinityConfig = &corev1.SessionAffinityConfig{
			ClientIP: &corev1.ClientIPConfig{TimeoutSeconds: ptr(timeout)},
		}
	} else {
		spec.SessionAffinity = corev1.ServiceAffinityNone
	}
	switch len(spec.IPFamilies) {
	case 0:
	case 1:
		spec.IPFamilyPolicy = ptr(corev1.IPFamilyPolicySingleStack)
	default:
		spec.IPFamilyPolicy = ptr(corev1.IPFamilyPolicyPreferDualStack)
	}
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{
			Name:      DerivedServiceName(name),
			Namespace: namespace,
			Labels: map[string]string{
				mcsv1beta1.LabelServiceName: name,
				v1alpha1.LabelManagedBy:     v1alpha1.ManagedByValue,
			},
		},
		Spec: spec,
	}
}

// EndpointSlices returns the imported EndpointSlices of imp, built from
// exports, the exports imp was merged from.
//
// Each slice holds endpoints of one source cluster and one address type,
// at most MaxEndpointsPerSlice of them, in address order; names are given
// by endpointSliceName, numbered per cluster and address type. A slice
// lists, for each import port its cluster serves (Import.PortSources), the
// cluster's own target port under the derived port name: kube-proxy pairs
// Service and endpoint ports by name, so a port a cluster does not serve
// sends it no traffic.
//
// For a ClusterSetIP import, slices carry kubernetes.io/service-name with
// the derived Service's name, for kube-proxy, and endpoints that serve no
// port of the import are left out. A Headless import has no derived
// Service: its slices exist for DNS (addresses and hostnames), with or
// without ports.
func EndpointSlices(imp Import, exports []Export, namespace, name string) []*discoveryv1.EndpointSlice {
	names := portNames(imp.Spec.Ports)
	byCluster := map[string]*Export{}
	for _, e := range oldestFirst(exports) {
		byCluster[e.Cluster] = e
	}
	labels := map[string]string{
		mcsv1beta1.LabelServiceName: name,
		discoveryv1.LabelManagedBy:  ManagedBy,
	}
	if imp.Spec.Type == mcsv1beta1.ClusterSetIP {
		labels[discoveryv1.LabelServiceName] = DerivedServiceName(name)
	}

	var out []*discoveryv1.EndpointSlice
	for _, cluster := range imp.Clusters {
		e := byCluster[cluster]
		if e == nil {
			continue
		}
		// Regroup: two slices of the exporter whose ports differ only in
		// ports the import does not take become one group here.
		var g grouper
		for _, s := range e.Slices {
			ports := importedPorts(imp, names, cluster, s.Ports)
			if len(ports) == 0 && imp.Spec.Type == mcsv1beta1.ClusterSetIP {
				continue
			}
			for _, ep := range s.Endpoints {
				if len(ep.Addresses) > 0 {
					g.add(s.AddressType, ports, ep)
				}
			}
		}
		index := map[discoveryv1.AddressType]int{}
		for _, s := range g.slices() {
			for chunk := range slices.Chunk(s.Endpoints, MaxEndpointsPerSlice) {
				sliceLabels := cloneMap(labels)
				sliceLabels[mcsv1beta1.LabelSourceCluster] = cluster
				out = append(out, &discoveryv1.EndpointSlice{
					ObjectMeta: metav1.ObjectMeta{
						Name:      endpointSliceName(name, cluster, s.AddressType, index[s.AddressType]),
						Namespace: namespace,
						Labels:    sliceLabels,
					},
					AddressType: s.AddressType,
					Ports:       canonicalPorts(s.Ports), // a copy per slice
					Endpoints:   toEndpoints(chunk),
				})
				index[s.AddressType]++
			}
		}
	}
	return out
}

// importedPorts maps the ports of one exported slice of cluster to the
// import's: for each import port the cluster serves, the slice's port of
// the cluster's own name, renamed to the derived name, with the import's
// protocol and appProtocol and the cluster's target port.
func importedPorts(imp Import, names []string, cluster string, own []discoveryv1.EndpointPort) []discoveryv1.EndpointPort {
	var out []discoveryv1.EndpointPort
	for i, p := range imp.Spec.Ports {
		ownName, ok := imp.PortSources[i][cluster]
		if !ok {
			continue
		}
		j := slices.IndexFunc(own, func(q discoveryv1.EndpointPort) bool { return deref(q.Name) == ownName })
		if j < 0 {
			continue // these endpoints lack the port (e.g. a named targetPort their pods do not declare)
		}
		out = append(out, discoveryv1.EndpointPort{
			Name:        ptr(names[i]),
			Protocol:    ptr(p.Protocol),
			AppProtocol: clonePtr(p.AppProtocol),
			Port:        clonePtr(own[j].Port),
		})
	}
	return canonicalPorts(out)
}

func toEndpoints(in []Endpoint) []discoveryv1.Endpoint {
	out := make([]discoveryv1.Endpoint, len(in))
	for i, e := range in {
		out[i] = discoveryv1.Endpoint{
			Addresses: slices.Clone(e.Addresses),
			Conditions: discoveryv1.EndpointConditions{
				Ready:       ptr(e.Ready),
				Serving:     ptr(e.Serving),
				Terminating: ptr(e.Terminating),
			},
		}
		if e.Hostname != "" {
			out[i].Hostname = ptr(e.Hostname)
		}
		if e.Zone != "" {
			out[i].Zone = ptr(e.Zone)
		}
	}
	return out
}
