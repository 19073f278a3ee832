package services

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	mcsv1beta1 "sigs.k8s.io/mcs-api/pkg/apis/v1beta1"

	"github.com/wirespan/wirespan/apis/v1alpha1"
	"github.com/wirespan/wirespan/gateway/internal/gossip"
	"github.com/wirespan/wirespan/internal/mcs"
)

// localExport is one ServiceExport of this cluster and what it yields.
type localExport struct {
	se       *mcsv1beta1.ServiceExport
	export   mcs.Export
	validity mcs.Validity
	limit    error // a *mcs.LimitError: valid, but not exported
}

func (l *localExport) exported() bool { return l.validity.Valid && l.limit == nil }

// world is everything one sync decides from.
type world struct {
	local []*localExport
	// exports holds every cluster's export of each Service, ours included.
	exports map[serviceKey][]mcs.Export
	// unsettled are remote clusters whose set of exports is not known to
	// be complete (no snapshot yet): what was imported from them stays.
	unsettled map[string]bool
	// published is the error of handing our exports to gossip.
	published error
	// kept is what writing the imports left in place for unsettled
	// clusters.
	kept kept
}

func (c *Controller) sync(ctx context.Context, exch Exchange) error {
	w, err := c.read(ctx, exch)
	if err != nil {
		return err
	}
	imports := map[serviceKey]mcs.Import{}
	for key, exps := range w.exports {
		imports[key] = mcs.Merge(exps)
	}
	var errs []error
	if err := c.writeExportStatus(ctx, w, imports); err != nil {
		errs = append(errs, err)
	}
	ips, err := c.writeImports(ctx, w, imports)
	if err != nil {
		errs = append(errs, err)
	}
	c.feedDNS(w, imports, ips)
	c.Metrics.localExports.Set(float64(len(w.local)))
	c.Metrics.imports.Set(float64(len(imports)))
	return errors.Join(errs...)
}

// read computes our exports, publishes them, and collects everyone's.
func (c *Controller) read(ctx context.Context, exch Exchange) (*world, error) {
	var ses mcsv1beta1.ServiceExportList
	if err := c.Cache.List(ctx, &ses); err != nil {
		return nil, fmt.Errorf("list ServiceExports: %w", err)
	}
	w := &world{exports: map[serviceKey][]mcs.Export{}, unsettled: map[string]bool{}}
	records := map[gossip.ExportKey]json.RawMessage{}
	for i := range ses.Items {
		se := &ses.Items[i]
		l, err := c.readLocal(ctx, se)
		if err != nil {
			return nil, err
		}
		w.local = append(w.local, l)
		if !l.exported() {
			continue
		}
		rec, err := json.Marshal(l.export)
		if err != nil {
			return nil, fmt.Errorf("encode export of %s/%s: %w", se.Namespace, se.Name, err)
		}
		records[gossip.ExportKey{Namespace: se.Namespace, Name: se.Name}] = rec
		key := serviceKey{Namespace: se.Namespace, Name: se.Name}
		w.exports[key] = append(w.exports[key], l.export)
	}
	w.published = exch.SetExports(records)
	if w.published != nil {
		c.Log.Error(w.published, "some exports could not be published")
	}

	seen := map[remoteKey]bool{}
	for cluster, ce := range exch.RemoteExports() {
		if cluster == c.ClusterID {
			continue
		}
		if !ce.Complete {
			w.unsettled[cluster] = true
		}
		for k, rec := range ce.Exports {
			rk := remoteKey{cluster: cluster, key: k}
			seen[rk] = true
			e := c.decode(rk, rec)
			if e == nil {
				continue
			}
			key := serviceKey{Namespace: k.Namespace, Name: k.Name}
			w.exports[key] = append(w.exports[key], *e)
		}
	}
	for rk := range c.decoded {
		if !seen[rk] {
			delete(c.decoded, rk)
		}
	}
	return w, nil
}

// decode returns the export a remote record holds, decoding it only when
// its version changed; nil if it is unusable (counted and logged once).
func (c *Controller) decode(rk remoteKey, rec gossip.RemoteExport) *mcs.Export {
	if d, ok := c.decoded[rk]; ok && d.version == rec.Version {
		return d.export
	}
	var e mcs.Export
	err := json.Unmarshal(rec.Record, &e)
	switch {
	case err != nil:
	case e.Cluster != rk.cluster || e.Service.Namespace != rk.key.Namespace || e.Service.Name != rk.key.Name:
		err = fmt.Errorf("record names %s %s/%s", e.Cluster, e.Service.Namespace, e.Service.Name)
	}
	d := decodedExport{version: rec.Version}
	if err != nil {
		c.Metrics.badRecords.Inc()
		c.Log.Info("Ignoring an unusable export record", "cluster", rk.cluster, "service", rk.key.String(), "error", err.Error())
	} else {
		d.export = &e
	}
	c.decoded[rk] = d
	return d.export
}

// readLocal computes the export of one ServiceExport from the caches.
func (c *Controller) readLocal(ctx context.Context, se *mcsv1beta1.ServiceExport) (*localExport, error) {
	var svc *corev1.Service
	var s corev1.Service
	switch err := c.Cache.Get(ctx, client.ObjectKey{Namespace: se.Namespace, Name: se.Name}, &s); {
	case err == nil:
		svc = &s
	case !apierrors.IsNotFound(err):
		return nil, fmt.Errorf("read Service %s/%s: %w", se.Namespace, se.Name, err)
	}
	var eps discoveryv1.EndpointSliceList
	if svc != nil {
		if err := c.Cache.List(ctx, &eps, client.InNamespace(se.Namespace),
			client.MatchingFields{indexSlicesOfService: se.Name}); err != nil {
			return nil, fmt.Errorf("list EndpointSlices of %s/%s: %w", se.Namespace, se.Name, err)
		}
	}
	slices := make([]*discoveryv1.EndpointSlice, 0, len(eps.Items))
	for i := range eps.Items {
		slices = append(slices, &eps.Items[i])
	}
	e, v, err := mcs.FromService(c.ClusterID, se, svc, slices)
	return &localExport{se: se, export: e, validity: v, limit: err}, nil
}

// writeExportStatus writes the Valid, Ready and Conflict conditions of our
// ServiceExports.
func (c *Controller) writeExportStatus(ctx context.Context, w *world, imports map[serviceKey]mcs.Import) error {
	return c.each(len(w.local), func(i int) error {
		l := w.local[i]
		se := l.se
		conds := []metav1.Condition{l.validity.Condition(se.Generation), readyCondition(l, w.published, se.Generation)}
		if l.exported() {
			key := serviceKey{Namespace: se.Namespace, Name: se.Name}
			conds = append(conds, imports[key].Conflicts[c.ClusterID].Condition(se.Generation))
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
		if err := c.Client.Status().Update(ctx, updated); err != nil && !apierrors.IsConflict(err) && !apierrors.IsNotFound(err) {
			return fmt.Errorf("update status of ServiceExport %s/%s: %w", se.Namespace, se.Name, err)
		}
		return nil
	})
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
	case refusal(published, l.se) != nil:
		cond.Status, cond.Reason = metav1.ConditionFalse, string(mcsv1beta1.ServiceExportReasonFailed)
		cond.Message = "not exported: gossip refused the record: " + refusal(published, l.se).Error()
	default:
		cond.Status, cond.Reason = metav1.ConditionTrue, string(mcsv1beta1.ServiceExportReasonExported)
		cond.Message = "exported to the clusterset"
	}
	return cond
}

// refusal is why gossip did not publish se's record: the reason SetExports
// gave for that record, or its whole error when it names no records (every
// record then failed); nil if it was published.
func refusal(published error, se *mcsv1beta1.ServiceExport) error {
	if published == nil {
		return nil
	}
	var refused *gossip.RefusedExportsError
	if errors.As(published, &refused) {
		return refused.Refused[gossip.ExportKey{Namespace: se.Namespace, Name: se.Name}]
	}
	return published
}

// conditionsEqual compares conditions ignoring LastTransitionTime, which
// SetStatusCondition keeps when the status stays.
func conditionsEqual(a, b []metav1.Condition) bool {
	return slices.EqualFunc(a, b, func(x, y metav1.Condition) bool {
		x.LastTransitionTime, y.LastTransitionTime = metav1.Time{}, metav1.Time{}
		return x == y
	})
}

// each runs f for 0..n-1 on up to Workers goroutines and joins the errors.
func (c *Controller) each(n int, f func(i int) error) error {
	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
		next = make(chan int)
	)
	for range min(c.Workers, n) {
		wg.Go(func() {
			for i := range next {
				if err := f(i); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	return errors.Join(errs...)
}

// sortedKeys returns the map's keys in order.
func sortedKeys[V any](m map[serviceKey]V) []serviceKey {
	return slices.SortedFunc(maps.Keys(m), func(a, b serviceKey) int {
		if a.Namespace != b.Namespace {
			if a.Namespace < b.Namespace {
				return -1
			}
			return 1
		}
		switch {
		case a.Name < b.Name:
			return -1
		case a.Name > b.Name:
			return 1
		}
		return 0
	})
}

// ours reports whether an object carries Wirespan's managed-by label.
func ours(labels map[string]string) bool {
	return labels[v1alpha1.LabelManagedBy] == v1alpha1.ManagedByValue
}
