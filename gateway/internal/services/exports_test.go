package services

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	mcsv1beta1 "sigs.k8s.io/mcs-api/pkg/apis/v1beta1"

	"github.com/wirespan/wirespan/apis/v1alpha1"
	"github.com/wirespan/wirespan/gateway/internal/gossip"
	"github.com/wirespan/wirespan/internal/mcs"
	"github.com/wirespan/wirespan/internal/poll"
)

// Tests of the export half: ServiceExport conditions.

const (
	valid    = mcsv1beta1.ServiceExportConditionValid
	ready    = mcsv1beta1.ServiceExportConditionReady
	conflict = mcsv1beta1.ServiceExportConditionConflict
	isTrue   = metav1.ConditionTrue
	isFalse  = metav1.ConditionFalse
)

func TestExportOfServiceIsValidReadyWithoutConflict(t *testing.T) {
	h := start(t)
	h.create(newService(h.ns, "web", tcp("http", 80, 8080)))
	h.create(newSlice(h.ns, "web", "web-1", []discoveryv1.EndpointPort{epPort("http", 8080)},
		endpoint("10.1.0.1", "", "", true, true, false)))
	h.create(newExport(h.ns, "web"))
	h.waitConditions(h.ns, "web", exportedOK...)
	if _, ok := h.published(h.ns, "web"); !ok {
		t.Error("Ready=True but nothing published")
	}
}

func TestExportWaitsForItsService(t *testing.T) {
	h := start(t)
	h.create(newExport(h.ns, "late"))
	h.waitConditions(h.ns, "late",
		cond{valid, isFalse, mcsv1beta1.ServiceExportReasonNoService, "does not exist"},
		cond{ready, isFalse, mcsv1beta1.ServiceExportReasonPending, ""},
	)
	h.settle()
	if _, ok := h.published(h.ns, "late"); ok {
		t.Error("an export without Service was published")
	}

	h.create(newService(h.ns, "late", tcp("http", 80, 80)))
	h.waitConditions(h.ns, "late", exportedOK...)
	h.eventually("record published", func() error {
		if _, ok := h.published(h.ns, "late"); !ok {
			return errors.New("not published")
		}
		return nil
	})
}

func TestExportOfExternalNameFails(t *testing.T) {
	h := start(t)
	svc := newService(h.ns, "ext")
	svc.Spec.Type, svc.Spec.ExternalName = corev1.ServiceTypeExternalName, "example.com"
	h.create(svc)
	h.create(newExport(h.ns, "ext"))
	h.waitConditions(h.ns, "ext",
		cond{valid, isFalse, mcsv1beta1.ServiceExportReasonInvalidServiceType, "ExternalName"},
		cond{ready, isFalse, mcsv1beta1.ServiceExportReasonFailed, "ExternalName"},
	)
	h.settle()
	if _, ok := h.published(h.ns, "ext"); ok {
		t.Error("an ExternalName Service was published")
	}
	if err := gone(h.ns, "ext", &mcsv1beta1.ServiceImport{}); err != nil {
		t.Error(err)
	}
}

func TestExportOfTooManyEndpointsFails(t *testing.T) {
	h := start(t)
	h.create(newService(h.ns, "big", tcp("http", 80, 80)))
	ports := []discoveryv1.EndpointPort{epPort("http", 80)}
	// Two slices, as an EndpointSlice holds at most 1000 endpoints.
	sizes := []int{600, mcs.MaxEndpoints + 1 - 600}
	for i, n := range sizes {
		var eps []discoveryv1.Endpoint
		for j := range n {
			eps = append(eps, endpoint(fmt.Sprintf("10.%d.%d.%d", 10+i, j/250, 1+j%250), "", "", true, true, false))
		}
		h.create(newSlice(h.ns, "big", fmt.Sprintf("big-%d", i), ports, eps...))
	}
	h.create(newExport(h.ns, "big"))
	h.waitConditions(h.ns, "big",
		cond{valid, isTrue, mcsv1beta1.ServiceExportReasonValid, ""},
		cond{ready, isFalse, mcsv1beta1.ServiceExportReasonFailed,
			fmt.Sprintf("%d endpoints; an export carries at most %d", mcs.MaxEndpoints+1, mcs.MaxEndpoints)},
	)
	h.settle()
	if _, ok := h.published(h.ns, "big"); ok {
		t.Error("an export over the limit was published")
	}
	if err := gone(h.ns, "big", &mcsv1beta1.ServiceImport{}); err != nil {
		t.Error(err)
	}

	// Under the limit again, it is exported.
	if err := k8s.Delete(context.Background(), newSlice(h.ns, "big", "big-1", nil)); err != nil {
		t.Fatal(err)
	}
	h.waitConditions(h.ns, "big", exportedOK...)
}

// TestExportRefusedByGossipFails: gossip fails to take a record (not a
// refusal of the record itself, which would stay): Ready=False, and the
// service is retried until gossip takes it.
func TestExportRefusedByGossipFails(t *testing.T) {
	h := start(t)
	h.exch.mu.Lock()
	h.exch.refuse = errors.New("record of 70000 bytes is too large")
	h.exch.mu.Unlock()
	h.create(newService(h.ns, "web", tcp("http", 80, 80)))
	h.create(newExport(h.ns, "web"))
	h.waitConditions(h.ns, "web",
		cond{valid, isTrue, mcsv1beta1.ServiceExportReasonValid, ""},
		cond{ready, isFalse, mcsv1beta1.ServiceExportReasonFailed, "too large"},
		cond{conflict, isFalse, mcsv1beta1.ServiceExportReasonNoConflicts, ""},
	)
	h.exch.mu.Lock()
	h.exch.refuse = nil
	h.exch.mu.Unlock()
	h.waitConditions(h.ns, "web", exportedOK...)
}

// TestExportRefusedRecordFailsAlone: gossip refuses one record by key; only
// that ServiceExport says Failed, the other is Exported.
func TestExportRefusedRecordFailsAlone(t *testing.T) {
	h := start(t)
	h.exch.mu.Lock()
	h.exch.refuse = &gossip.RefusedExportsError{Refused: map[gossip.ExportKey]error{
		{Namespace: h.ns, Name: "big"}: errors.New("record of 300000 bytes, limit 262144"),
	}}
	h.exch.mu.Unlock()
	for _, name := range []string{"big", "web"} {
		h.create(newService(h.ns, name, tcp("http", 80, 80)))
		h.create(newExport(h.ns, name))
	}
	h.waitConditions(h.ns, "big",
		cond{valid, isTrue, mcsv1beta1.ServiceExportReasonValid, ""},
		cond{ready, isFalse, mcsv1beta1.ServiceExportReasonFailed, "300000 bytes"},
		cond{conflict, isFalse, mcsv1beta1.ServiceExportReasonNoConflicts, ""},
	)
	h.waitConditions(h.ns, "web", exportedOK...)
}

// TestExportConflicts has a remote cluster export our Services with
// another port definition, type or session affinity: the oldest export
// wins, and ours says Conflict with the property's reason.
func TestExportConflicts(t *testing.T) {
	h := start(t)
	type conflictCase struct {
		name   string
		older  bool // the remote export is older than ours
		remote func(*mcs.Export)
		reason mcsv1beta1.ServiceExportConditionReason
		// message is part of the message of our Conflict condition.
		message string
		// check tells whether the import took the winning value.
		check func(*mcsv1beta1.ServiceImport) error
	}
	cases := []conflictCase{{
		name:    "ports",
		older:   true,
		remote:  func(e *mcs.Export) { e.Ports = []mcsv1beta1.ServicePort{mport("http", 8080)} },
		reason:  mcsv1beta1.ServiceExportReasonPortConflict,
		message: `this export's port "http" 80/TCP clashes with "http" 8080/TCP from cluster "west", which wins`,
		check:   importPorts(8080),
	}, {
		name:    "ports-newer",
		remote:  func(e *mcs.Export) { e.Ports = []mcsv1beta1.ServicePort{mport("http", 8080)} },
		reason:  mcsv1beta1.ServiceExportReasonPortConflict,
		message: `kept over clashing ports of newer exports: "http" 80/TCP from cluster "east"`,
		check:   importPorts(80),
	}, {
		name:    "type",
		older:   true,
		remote:  func(e *mcs.Export) { e.Type = mcsv1beta1.Headless },
		reason:  mcsv1beta1.ServiceExportReasonTypeConflict,
		message: `the oldest export's value "Headless" (cluster "west") wins over this export's "ClusterSetIP"`,
		check: func(si *mcsv1beta1.ServiceImport) error {
			if si.Spec.Type != mcsv1beta1.Headless {
				return fmt.Errorf("type %s, want Headless", si.Spec.Type)
			}
			return nil
		},
	}, {
		name:  "affinity",
		older: true,
		remote: func(e *mcs.Export) {
			e.SessionAffinity = corev1.ServiceAffinityClientIP
			e.SessionAffinityConfig = &corev1.SessionAffinityConfig{ClientIP: &corev1.ClientIPConfig{TimeoutSeconds: ptr[int32](60)}}
		},
		reason:  mcsv1beta1.ServiceExportReasonSessionAffinityConflict,
		message: `the oldest export's value "ClientIP" (cluster "west") wins over this export's "None"`,
		check: func(si *mcsv1beta1.ServiceImport) error {
			if si.Spec.SessionAffinity != corev1.ServiceAffinityClientIP {
				return fmt.Errorf("session affinity %s, want ClientIP", si.Spec.SessionAffinity)
			}
			return nil
		},
	}}
	// West's exports are here first: a remote export first seen after
	// ours counts as created no earlier than it was seen (firstseen.go),
	// so it could not be the older one.
	var remote []mcs.Export
	now := time.Now()
	for _, c := range cases {
		created := now.Add(time.Hour)
		if c.older {
			created = now.Add(-time.Hour)
		}
		e := remoteExport("west", h.ns, c.name, created, mport("http", 80))
		c.remote(&e)
		remote = append(remote, e)
	}
	h.setRemote("west", true, remote...)
	for _, c := range cases {
		h.waitImport(h.ns, c.name, importClusters("west"))
		h.create(newService(h.ns, c.name, tcp("http", 80, 80)))
		h.create(newExport(h.ns, c.name))
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h.waitConditions(h.ns, c.name,
				cond{valid, isTrue, mcsv1beta1.ServiceExportReasonValid, ""},
				cond{ready, isTrue, mcsv1beta1.ServiceExportReasonExported, ""},
				cond{conflict, isTrue, c.reason, c.message},
			)
			h.waitImport(h.ns, c.name, c.check)
		})
	}
	// The gauge the chart's WirespanExportConflicts alert reads counts
	// the exports whose condition says Conflict.
	h.waitConflictGauge(len(cases))

	// The conflicting exports withdrawn, the conflicts end.
	h.setRemote("west", true)
	for _, c := range cases {
		h.waitConditions(h.ns, c.name, exportedOK...)
	}
	h.waitConflictGauge(0)
}

// waitConflictGauge waits for wirespan_mcs_export_conflicts to be want.
func (h *harness) waitConflictGauge(want int) {
	h.t.Helper()
	poll.Until(h.t, 10*time.Second, "wirespan_mcs_export_conflicts", func() error {
		var m dto.Metric
		if err := h.ctrl.Metrics.conflicts.Write(&m); err != nil {
			return err
		}
		if got := m.GetGauge().GetValue(); got != float64(want) {
			return fmt.Errorf("wirespan_mcs_export_conflicts = %v, want %d", got, want)
		}
		return nil
	})
}

// importPorts checks the port numbers of a ServiceImport.
func importPorts(want ...int32) func(*mcsv1beta1.ServiceImport) error {
	return func(si *mcsv1beta1.ServiceImport) error {
		var have []int32
		for _, p := range si.Spec.Ports {
			have = append(have, p.Port)
		}
		if fmt.Sprint(have) != fmt.Sprint(want) {
			return fmt.Errorf("ports %v, want %v", have, want)
		}
		return nil
	}
}

func TestExportedLabelsAndAnnotationsReachTheImport(t *testing.T) {
	h := start(t)
	h.create(newService(h.ns, "web", tcp("http", 80, 80)))
	se := newExport(h.ns, "web")
	se.Spec.ExportedLabels = map[string]string{"team": "payments"}
	se.Spec.ExportedAnnotations = map[string]string{"example.com/note": "hello"}
	h.create(se)
	wantMeta := func(labels, annotations map[string]string) func(*mcsv1beta1.ServiceImport) error {
		labels = maps.Clone(labels)
		labels[v1alpha1.LabelManagedBy] = v1alpha1.ManagedByValue
		return func(si *mcsv1beta1.ServiceImport) error {
			// Wirespan's own record of first sightings is not exported.
			got := maps.Clone(si.Annotations)
			delete(got, FirstSeenAnnotation)
			if !maps.Equal(si.Labels, labels) || !maps.Equal(got, annotations) {
				return fmt.Errorf("labels %v annotations %v, want %v and %v", si.Labels, si.Annotations, labels, annotations)
			}
			return nil
		}
	}
	h.waitImport(h.ns, "web", wantMeta(se.Spec.ExportedLabels, se.Spec.ExportedAnnotations))

	// A change of the ServiceExport reaches the ServiceImport.
	h.eventually("update ServiceExport", func() error {
		if err := get(h.ns, "web", se); err != nil {
			return err
		}
		se.Spec.ExportedLabels = map[string]string{"tier": "gold"}
		se.Spec.ExportedAnnotations = nil
		return k8s.Update(context.Background(), se)
	})
	h.waitImport(h.ns, "web", wantMeta(map[string]string{"tier": "gold"}, nil))
	h.waitConditions(h.ns, "web", exportedOK...)
}
