package mcs

import (
	"cmp"
	"fmt"
	"maps"
	"slices"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	mcsv1beta1 "sigs.k8s.io/mcs-api/pkg/apis/v1beta1"
)

// ManagedBy is Wirespan's value of the endpointslice.kubernetes.io/managed-by
// label, set on the EndpointSlices it writes for imported Services.
// FromService skips slices carrying it, so that a cluster that both exports
// and imports a Service never exports again the endpoints it imported.
const ManagedBy = "wirespan.io"

// Validity is the ServiceExport's Valid condition (KEP-1645): whether the
// Service it names can be exported at all.
type Validity struct {
	// Valid is the condition's status.
	Valid bool
	// Reason is Valid, NoService or InvalidServiceType.
	Reason mcsv1beta1.ServiceExportConditionReason
	// Message says why, for a human.
	Message string
}

// Condition returns the Valid condition for a ServiceExport of the given
// metadata.generation. LastTransitionTime is left zero:
// meta.SetStatusCondition sets it when the status changes.
func (v Validity) Condition(generation int64) metav1.Condition {
	return condition(mcsv1beta1.ServiceExportConditionValid, v.Valid, v.Reason, v.Message, generation)
}

// LimitError is returned by FromService for a Service too large for one
// export record (see MaxEndpoints and MaxPorts). The Service is valid but
// cannot be exported: put Error() in the ServiceExport's Ready condition,
// status False, reason mcsv1beta1.ServiceExportReasonFailed.
type LimitError struct {
	// What is counted: "endpoints" or "ports".
	What string
	// Count is how many the Service has; Max how many an export carries.
	Count, Max int
}

func (e *LimitError) Error() string {
	return fmt.Sprintf("the Service has %d %s; an export carries at most %d", e.Count, e.What, e.Max)
}

// FromService computes what cluster exports for the Service svc named by
// the ServiceExport se. endpointSlices are the Service's EndpointSlices (label
// kubernetes.io/service-name=svc.Name, filtered by the caller); FQDN slices
// and Wirespan's own (ManagedBy) are skipped.
//
// Validity is the ServiceExport's Valid condition: False with NoService
// when svc is nil, False with InvalidServiceType for an ExternalName
// Service, True otherwise. A non-nil error is a *LimitError: the Service is
// valid but larger than one export may be. The Export is usable (to be
// gossiped) only when Validity.Valid is true and the error is nil;
// otherwise it is the zero Export and the cluster exports nothing for the
// Service.
func FromService(cluster string, se *mcsv1beta1.ServiceExport, svc *corev1.Service, endpointSlices []*discoveryv1.EndpointSlice) (Export, Validity, error) {
	ref := fmt.Sprintf("%s/%s", se.Namespace, se.Name)
	if svc == nil {
		return Export{}, Validity{
			Reason:  mcsv1beta1.ServiceExportReasonNoService,
			Message: fmt.Sprintf("Service %s does not exist; it is exported once it is created", ref),
		}, nil
	}
	if svc.Spec.Type == corev1.ServiceTypeExternalName {
		return Export{}, Validity{
			Reason: mcsv1beta1.ServiceExportReasonInvalidServiceType,
			Message: fmt.Sprintf("Service %s is of type ExternalName, which cannot be exported; "+
				"create the ExternalName Service in each cluster instead", ref),
		}, nil
	}
	typ := mcsv1beta1.ClusterSetIP
	if svc.Spec.ClusterIP == corev1.ClusterIPNone {
		typ = mcsv1beta1.Headless
	}
	valid := Validity{
		Valid:   true,
		Reason:  mcsv1beta1.ServiceExportReasonValid,
		Message: fmt.Sprintf("Service %s can be exported, as a %s service", ref, typ),
	}
	if n := len(svc.Spec.Ports); n > MaxPorts {
		return Export{}, valid, &LimitError{What: "ports", Count: n, Max: MaxPorts}
	}
	exp := Export{
		Cluster:               cluster,
		Service:               types.NamespacedName{Namespace: se.Namespace, Name: se.Name},
		Created:               se.CreationTimestamp.Time,
		Type:                  typ,
		Ports:                 exportPorts(svc.Spec.Ports),
		SessionAffinity:       svc.Spec.SessionAffinity,
		SessionAffinityConfig: svc.Spec.SessionAffinityConfig.DeepCopy(),
		IPFamilies:            slices.Clone(svc.Spec.IPFamilies),
		InternalTrafficPolicy: clonePtr(svc.Spec.InternalTrafficPolicy),
		TrafficDistribution:   clonePtr(svc.Spec.TrafficDistribution),
		Labels:                cloneMap(se.Spec.ExportedLabels),
		Annotations:           cloneMap(se.Spec.ExportedAnnotations),
		Slices:                exportSlices(endpointSlices),
	}
	if n := endpointCount(exp.Slices); n > MaxEndpoints {
		return Export{}, valid, &LimitError{What: "endpoints", Count: n, Max: MaxEndpoints}
	}
	return exp, valid, nil
}

// exportPorts keeps what KEP-1645 calls a port's external properties, with
// the protocol defaulted as the API server does, so that ports of
// different clusters compare equal when they mean the same.
func exportPorts(in []corev1.ServicePort) []mcsv1beta1.ServicePort {
	var out []mcsv1beta1.ServicePort
	for _, p := range in {
		out = append(out, mcsv1beta1.ServicePort{
			Name:        p.Name,
			Protocol:    cmp.Or(p.Protocol, corev1.ProtocolTCP),
			AppProtocol: clonePtr(p.AppProtocol),
			Port:        p.Port,
		})
	}
	return out
}

func exportSlices(in []*discoveryv1.EndpointSlice) []Slice {
	var g grouper
	for _, s := range in {
		if s == nil || s.Labels[discoveryv1.LabelManagedBy] == ManagedBy ||
			s.AddressType == discoveryv1.AddressTypeFQDN {
			continue
		}
		ports := canonicalPorts(s.Ports)
		for i := range s.Endpoints {
			if e, ok := fromEndpoint(&s.Endpoints[i]); ok {
				g.add(s.AddressType, ports, e)
			}
		}
	}
	return g.slices()
}

func cloneMap(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	return maps.Clone(m)
}

// condition builds a metav1.Condition without LastTransitionTime.
func condition(typ mcsv1beta1.ServiceExportConditionType, status bool,
	reason mcsv1beta1.ServiceExportConditionReason, message string, generation int64,
) metav1.Condition {
	s := metav1.ConditionFalse
	if status {
		s = metav1.ConditionTrue
	}
	return metav1.Condition{
		Type:               string(typ),
		Status:             s,
		ObservedGeneration: generation,
		Reason:             string(reason),
		Message:            message,
	}
}
