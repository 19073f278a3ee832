package services

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	mcsv1beta1 "sigs.k8s.io/mcs-api/pkg/apis/v1beta1"

	"github.com/wirespan/wirespan/apis/v1alpha1"
	"github.com/wirespan/wirespan/gateway/internal/gossip"
	"github.com/wirespan/wirespan/internal/mcs"
)

// reconcile brings one service in line: it publishes or withdraws our
// export of it, merges every cluster's export, writes the ServiceExport's
// conditions and the import (ServiceImport, derived Service,
// EndpointSlices), and feeds DNS.
func (c *Controller) reconcile(ctx context.Context, exch Exchange, key serviceKey) error {
	local, err := c.readLocal(ctx, key)
	if err != nil {
		return err
	}
	var errs []error
	published, retry := c.publish(exch, key, local)
	errs = append(errs, retry)
	remote := c.remoteFor(key)
	exports := c.withinRanges(c.inExportNamespaces(key, remote.exports))
	si, err := read[mcsv1beta1.ServiceImport](ctx, c, key, key)
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	exports, seen := c.boundCreated(key, si, exports, time.Now())
	if local != nil && local.exported() {
		exports = append(exports, local.export)
		seen = withOwnExport(seen, c.ClusterID, local.export.Created)
	}
	var imp mcs.Import
	if len(exports) > 0 {
		imp = mcs.Merge(exports)
		if len(seen) > 0 {
			imp.Annotations = withFirstSeen(imp.Annotations, seen)
		}
	}
	c.count(key, local != nil, len(exports) > 0, local != nil && local.exported() && imp.Conflicts[c.ClusterID].Conflicting())

	if local != nil {
		errs = append(errs, c.writeExportStatus(ctx, key, local, published, imp))
	}
	if !c.warmedUp(ctx) {
		// Imports wait for gossip after a takeover; come back soon.
		c.queue.AddAfter(key, warmupRecheck)
		return errors.Join(errs...)
	}
	errs = append(errs, c.writeImportOf(ctx, key, imp, exports, remote))
	return errors.Join(errs...)
}

// localExport is one ServiceExport of this cluster and what it yields.
type localExport struct {
	se       *mcsv1beta1.ServiceExport
	export   mcs.Export
	validity mcs.Validity
	limit    error // a *mcs.LimitError: valid, but not exported
}

func (l *localExport) exported() bool { return l.validity.Valid && l.limit == nil }

// readLocal computes the export of the ServiceExport key; nil if there is
// none.
func (c *Controller) readLocal(ctx context.Context, key serviceKey) (*localExport, error) {
	se, err := read[mcsv1beta1.ServiceExport](ctx, c, key, key)
	if se == nil || err != nil {
		return nil, err
	}
	svc, err := read[corev1.Service](ctx, c, key, key)
	if err != nil {
		return nil, err
	}
	var eps discoveryv1.EndpointSliceList
	if svc != nil {
		if err := c.Cache.List(ctx, &eps, client.InNamespace(key.Namespace),
			client.MatchingFields{indexSlicesOfService: key.Name}); err != nil {
			return nil, fmt.Errorf("list EndpointSlices of %s: %w", key, err)
		}
	}
	own := make([]*discoveryv1.EndpointSlice, 0, len(eps.Items))
	for i := range eps.Items {
		own = append(own, &eps.Items[i])
	}
	e, v, limit := mcs.FromService(c.ClusterID, se, svc, own)
	return &localExport{se: se, export: e, validity: v, limit: limit}, nil
}

// publish hands our export of key to gossip, or withdraws it. It returns
// why the record is not published, for the Ready condition, and the error
// to retry on: gossip refusing the record for what it is (too large, say)
// is not retried, since only a change of the Service can help; any other
// failure (gossip stopping) is.
func (c *Controller) publish(exch Exchange, key serviceKey, local *localExport) (refusal, retry error) {
	if local == nil || !local.exported() {
		if err := exch.WithdrawExport(exportKey(key)); err != nil {
			return nil, fmt.Errorf("withdraw the export: %w", err)
		}
		return nil, nil
	}
	rec, err := json.Marshal(local.export)
	if err != nil {
		return fmt.Errorf("encode the export: %w", err), nil
	}
	err = exch.PublishExport(exportKey(key), rec)
	var refused *gossip.RefusedExportsError
	if errors.As(err, &refused) {
		return refused.Refused[exportKey(key)], nil
	}
	if err != nil {
		return err, fmt.Errorf("publish the export: %w", err)
	}
	return nil, nil
}

// writeExportStatus writes the Valid, Ready and Conflict conditions of
// our ServiceExport.
func (c *Controller) writeExportStatus(ctx context.Context, key serviceKey, l *localExport, published error, imp mcs.Import) error {
	se := l.se
	conds := []metav1.Condition{l.validity.Condition(se.Generation), readyCondition(l, published, se.Generation)}
	if l.exported() {
		conds = append(conds, imp.Conflicts[c.ClusterID].Condition(se.Generation))
	}
	updated := se.DeepCopy()
	for _, cond := range conds {
		meta.SetStatusCondition(&updated.Status.Conditions, cond)
	}
	if !l.exported() {
		meta.RemoveStatusCondition(&updated.Status.Conditions, string(mcsv1beta1.ServiceExportConditionConflict))
	}
	if conditionsEqual(se.Status.Conditions, updated.Status.Conditions) {
		return nil
	}
	if err := c.Client.Status().Update(ctx, updated); err != nil {
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("update status of ServiceExport %s: %w", key, err)
	}
	c.writes.wrote(key, updated)
	return nil
}

// readyCondition is the Ready condition of a ServiceExport: Exported once
// its record is in gossip; Pending while the Service is missing; Failed
// for an ExternalName Service or one too large to export.
func readyCondition(l *localExport, published error, generation int64) metav1.Condition {
	cond := metav1.Condition{Type: string(mcsv1beta1.ServiceExportConditionReady), ObservedGeneration: generation}
	switch {
	case !l.validity.Valid && l.validity.Reason == mcsv1beta1.ServiceExportReasonNoService:
		cond.Status, cond.Reason = metav1.ConditionFalse, string(mcsv1beta1.ServiceExportReasonPending)
		cond.Message = "waiting for the Service to exist"
	case !l.validity.Valid:
		cond.Status, cond.Reason = metav1.ConditionFalse, string(mcsv1beta1.ServiceExportReasonFailed)
		cond.Message = "not exported: " + l.validity.Message
	case l.limit != nil:
		cond.Status, cond.Reason = metav1.ConditionFalse, string(mcsv1beta1.ServiceExportReasonFailed)
		cond.Message = "not exported: " + l.limit.Error()
	case published != nil:
		cond.Status, cond.Reason = metav1.ConditionFalse, string(mcsv1beta1.ServiceExportReasonFailed)
		cond.Message = "not exported: gossip refused the record: " + published.Error()
	default:
		cond.Status, cond.Reason = metav1.ConditionTrue, string(mcsv1beta1.ServiceExportReasonExported)
		cond.Message = "exported to the clusterset"
	}
	return cond
}

// conditionsEqual compares conditions ignoring LastTransitionTime, which
// SetStatusCondition keeps when the status stays.
func conditionsEqual(a, b []metav1.Condition) bool {
	return slices.EqualFunc(a, b, func(x, y metav1.Condition) bool {
		x.LastTransitionTime, y.LastTransitionTime = metav1.Time{}, metav1.Time{}
		return x == y
	})
}

// read returns the object name of the service key as the controller last
// knows it: the informer cache, or the controller's own newer write; nil
// if it does not exist.
func read[T any, PT interface {
	*T
	client.Object
}](ctx context.Context, c *Controller, key serviceKey, name types.NamespacedName) (PT, error) {
	obj := PT(new(T))
	var cached client.Object
	switch err := c.Cache.Get(ctx, name, obj); {
	case err == nil:
		cached = obj
	case !apierrors.IsNotFound(err):
		return nil, fmt.Errorf("read %s %s: %w", kindOf(obj), name, err)
	}
	// The name given, not obj's: a cache miss leaves obj empty.
	got, ok := c.writes.resolve(key, objRef{kind: kindOf(obj), NamespacedName: name}, cached)
	if !ok {
		return nil, nil
	}
	return got.(PT), nil
}

// importedSlices lists the EndpointSlices Wirespan imported for a
// service, as the controller last knows them.
func (c *Controller) importedSlices(ctx context.Context, key serviceKey) ([]*discoveryv1.EndpointSlice, error) {
	var list discoveryv1.EndpointSliceList
	if err := c.Cache.List(ctx, &list, client.InNamespace(key.Namespace), client.MatchingFields{indexImportedSlices: key.Name}); err != nil {
		return nil, fmt.Errorf("list imported EndpointSlices of %s: %w", key, err)
	}
	pending := c.writes.pending(key, "EndpointSlice")
	out := make([]*discoveryv1.EndpointSlice, 0, len(list.Items)+len(pending))
	for i := range list.Items {
		s := &list.Items[i]
		if _, ok := pending[s.Name]; ok {
			delete(pending, s.Name)
			if got, ok := c.writes.resolve(key, refOf(s), s); ok {
				out = append(out, got.(*discoveryv1.EndpointSlice))
			}
			continue
		}
		out = append(out, s)
	}
	for name := range pending {
		ref := objRef{kind: "EndpointSlice", NamespacedName: types.NamespacedName{Namespace: key.Namespace, Name: name}}
		if got, ok := c.writes.resolve(key, ref, nil); ok {
			out = append(out, got.(*discoveryv1.EndpointSlice))
		}
	}
	return out, nil
}

// derivedServices returns the derived Services of namespace ns (every
// namespace if empty), by the import they were made for.
func (c *Controller) derivedServices(ctx context.Context, ns string) (map[serviceKey]*corev1.Service, error) {
	var svcs corev1.ServiceList
	if err := c.Cache.List(ctx, &svcs, client.InNamespace(ns), client.MatchingLabels{v1alpha1.LabelManagedBy: v1alpha1.ManagedByValue}); err != nil {
		return nil, fmt.Errorf("list derived Services: %w", err)
	}
	out := map[serviceKey]*corev1.Service{}
	for i := range svcs.Items {
		if name, ok := derivedFrom(&svcs.Items[i]); ok {
			out[serviceKey{Namespace: svcs.Items[i].Namespace, Name: name}] = &svcs.Items[i]
		}
	}
	return out, nil
}

// onlyRaces reports whether every error in err is an expected race with
// another writer or with the cache (a conflict, or an object that already
// exists), which a retry resolves.
func onlyRaces(err error) bool {
	if err == nil {
		return false
	}
	if joined, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range joined.Unwrap() {
			if e != nil && !onlyRaces(e) {
				return false
			}
		}
		return true
	}
	if inner := errors.Unwrap(err); inner != nil {
		return onlyRaces(inner)
	}
	return apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err)
}

// count keeps the gauges of local exports, imports and exports in
// conflict (those whose Conflict condition writeExportStatus sets True).
func (c *Controller) count(key serviceKey, exported, imported, conflicting bool) {
	c.countMu.Lock()
	defer c.countMu.Unlock()
	set := func(m map[serviceKey]bool, on bool) {
		if on {
			m[key] = true
		} else {
			delete(m, key)
		}
	}
	set(c.exported, exported)
	set(c.imported, imported)
	set(c.conflicting, conflicting)
	c.Metrics.localExports.Set(float64(len(c.exported)))
	c.Metrics.imports.Set(float64(len(c.imported)))
	c.Metrics.conflicts.Set(float64(len(c.conflicting)))
}

// ours reports whether an object carries Wirespan's managed-by label.
func ours(labels map[string]string) bool {
	return labels[v1alpha1.LabelManagedBy] == v1alpha1.ManagedByValue
}

func ptr[T any](v T) *T { return &v }
