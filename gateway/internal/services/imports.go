package services

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	mcsv1beta1 "sigs.k8s.io/mcs-api/pkg/apis/v1beta1"

	"github.com/wirespan/wirespan/apis/v1alpha1"
	"github.com/wirespan/wirespan/internal/mcs"
)

// writeImports brings every namespace's ServiceImports, derived Services
// and EndpointSlices in line with imports, and returns the clusterset IPs
// of each ClusterSetIP import that has them.
func (c *Controller) writeImports(ctx context.Context, w *world, imports map[serviceKey]mcs.Import) (map[serviceKey][]string, error) {
	var nss corev1.NamespaceList
	if err := c.Cache.List(ctx, &nss); err != nil {
		return nil, fmt.Errorf("list namespaces: %w", err)
	}
	present := map[string]bool{}
	for _, ns := range nss.Items {
		if ns.DeletionTimestamp == nil {
			present[ns.Name] = true
		}
	}
	c.present = present
	families := c.serviceFamilies()
	keys := sortedKeys(imports)
	var (
		mu  sync.Mutex
		ips = map[serviceKey][]string{}
	)
	err := c.each(len(keys), func(i int) error {
		key := keys[i]
		if !present[key.Namespace] {
			return nil
		}
		imp, addressable := mcs.ForFamilies(imports[key], families)
		if !addressable {
			c.Log.V(1).Info("An import has no IP family this cluster's Services have: no clusterset IP", "service", key.String(),
				"importFamilies", imp.Spec.IPFamilies, "clusterFamilies", families)
		}
		got, err := c.writeImport(ctx, key, imp, addressable, w)
		if len(got) > 0 {
			mu.Lock()
			ips[key] = got
			mu.Unlock()
		}
		c.feedOne(w, key, imp, got)
		return err
	})
	return ips, errors.Join(err, c.removeStale(ctx, w, imports))
}

// writeImport writes one import and returns its clusterset IPs. An import
// that is not addressable here (no IP family in common with this cluster)
// gets a ServiceImport and EndpointSlices but no derived Service.
//
// The derived Service is written before the ServiceImport, so that a new
// ServiceImport is created with its IPs: nobody sees a ClusterSetIP
// import without them, and a new import costs four writes (Service,
// ServiceImport, its status, one EndpointSlice per source cluster), not
// the five that creating the ServiceImport first and adding its IPs would.
// It is why the derived Service has no owner reference (the ServiceImport
// it would name does not exist yet when it is created): removeStale
// deletes it with its import, and any derived Service whose import is
// gone.
func (c *Controller) writeImport(ctx context.Context, key serviceKey, imp mcs.Import, addressable bool, w *world) ([]string, error) {
	want := mcs.ServiceImport(imp, key.Namespace, key.Name)
	var si mcsv1beta1.ServiceImport
	exists := true
	switch err := c.Cache.Get(ctx, key, &si); {
	case apierrors.IsNotFound(err):
		exists = false
	case err != nil:
		return nil, fmt.Errorf("read ServiceImport %s: %w", key, err)
	case !ours(si.Labels):
		c.Log.V(1).Info("Leaving alone a ServiceImport Wirespan did not create", "serviceImport", key.String())
		return nil, nil
	}

	var ips []string
	var svcErr error
	if derived := mcs.DerivedService(imp, key.Namespace, key.Name); derived != nil && addressable {
		ips, svcErr = c.writeDerivedService(ctx, derived)
	} else {
		svcErr = c.deleteDerivedService(ctx, key)
	}
	want.Spec.IPs = ips
	var errs []error
	if svcErr != nil {
		errs = append(errs, svcErr)
		want.Spec.IPs = si.Spec.IPs // keep what clients use
	}
	switch {
	case !exists:
		created := want.DeepCopy()
		created.Status = mcsv1beta1.ServiceImportStatus{}
		if err := c.create(ctx, created); err != nil {
			return nil, errors.Join(append(errs, fmt.Errorf("create ServiceImport %s: %w", key, err))...)
		}
		c.Log.Info("Imported a service", "service", key.String(), "clusters", imp.Clusters, "ips", created.Spec.IPs)
		si = *created
	default:
		if updated, changed := mcs.ApplyServiceImport(&si, want); changed {
			if err := c.Client.Update(ctx, updated); err != nil {
				errs = append(errs, fmt.Errorf("update ServiceImport %s: %w", key, err))
			} else {
				si = *updated
			}
		}
	}
	if updated, changed := mcs.ApplyServiceImportStatus(&si, want); changed {
		if err := c.Client.Status().Update(ctx, updated); err != nil {
			errs = append(errs, fmt.Errorf("update status of ServiceImport %s: %w", key, err))
		}
	}
	owner := metav1.OwnerReference{
		APIVersion: mcsv1beta1.GroupVersion.String(), Kind: "ServiceImport",
		Name: si.Name, UID: si.UID, Controller: ptr(true),
	}
	if err := c.writeSlices(ctx, key, mcs.EndpointSlices(imp, w.exports[key], key.Namespace, key.Name), owner, w); err != nil {
		errs = append(errs, err)
	}
	return want.Spec.IPs, errors.Join(errs...)
}

// writeDerivedService creates or updates the derived Service and returns
// its cluster IPs, which the ServiceImport publishes. The Service is never
// replaced unless its IP family must change, so its IPs stay for the life
// of the import.
func (c *Controller) writeDerivedService(ctx context.Context, want *corev1.Service) ([]string, error) {
	key := client.ObjectKeyFromObject(want)
	var have corev1.Service
	switch err := c.Cache.Get(ctx, key, &have); {
	case apierrors.IsNotFound(err):
		created := forCreate(want)
		if err := c.create(ctx, created); err != nil {
			return nil, fmt.Errorf("create derived Service %s: %w", key, err)
		}
		return created.Spec.ClusterIPs, nil
	case err != nil:
		return nil, fmt.Errorf("read derived Service %s: %w", key, err)
	}
	if mcs.ServiceNeedsRecreate(&have, want) {
		if err := c.Client.Delete(ctx, &have); err != nil && !apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("delete derived Service %s to recreate it: %w", key, err)
		}
		created := forCreate(want)
		if err := c.create(ctx, created); err != nil {
			return nil, fmt.Errorf("recreate derived Service %s: %w", key, err)
		}
		return created.Spec.ClusterIPs, nil
	}
	if updated, changed := mcs.ApplyService(&have, want); changed {
		if err := c.Client.Update(ctx, updated); err != nil {
			return have.Spec.ClusterIPs, fmt.Errorf("update derived Service %s: %w", key, err)
		}
	}
	return have.Spec.ClusterIPs, nil
}

// forCreate returns a copy of the derived Service to create. A
// PreferDualStack one lists only its primary family: the API server
// refuses a listed family that the cluster lacks, PreferDualStack or not,
// and adds the second family itself where the cluster has both.
// mcs.ApplyService accepts either outcome as is.
func forCreate(want *corev1.Service) *corev1.Service {
	created := want.DeepCopy()
	if p := created.Spec.IPFamilyPolicy; p != nil && *p == corev1.IPFamilyPolicyPreferDualStack && len(created.Spec.IPFamilies) > 1 {
		created.Spec.IPFamilies = created.Spec.IPFamilies[:1]
	}
	return created
}

func (c *Controller) deleteDerivedService(ctx context.Context, key serviceKey) error {
	var have corev1.Service
	dkey := serviceKey{Namespace: key.Namespace, Name: mcs.DerivedServiceName(key.Name)}
	if err := c.Cache.Get(ctx, dkey, &have); err != nil {
		return client.IgnoreNotFound(err)
	}
	if err := c.Client.Delete(ctx, &have); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete derived Service %s: %w", dkey, err)
	}
	return nil
}

// writeSlices makes the imported EndpointSlices of one service equal to
// want, except that slices from unsettled clusters are not removed (they
// are recorded in w.kept).
func (c *Controller) writeSlices(ctx context.Context, key serviceKey, want []*discoveryv1.EndpointSlice, owner metav1.OwnerReference, w *world) error {
	have, err := c.importedSlices(ctx, key)
	if err != nil {
		return err
	}
	var errs []error
	wanted := map[string]bool{}
	for _, s := range want {
		wanted[s.Name] = true
		s.OwnerReferences = []metav1.OwnerReference{owner}
		i := slices.IndexFunc(have, func(h *discoveryv1.EndpointSlice) bool { return h.Name == s.Name })
		if i < 0 {
			if err := c.create(ctx, s); err != nil && !apierrors.IsAlreadyExists(err) {
				errs = append(errs, fmt.Errorf("create EndpointSlice %s/%s: %w", s.Namespace, s.Name, err))
			}
			continue
		}
		if updated, changed := mcs.ApplyEndpointSlice(have[i], s); changed {
			if err := c.Client.Update(ctx, updated); err != nil {
				errs = append(errs, fmt.Errorf("update EndpointSlice %s/%s: %w", s.Namespace, s.Name, err))
			}
		}
	}
	for _, h := range have {
		if wanted[h.Name] {
			continue
		}
		if w.unsettled[h.Labels[mcsv1beta1.LabelSourceCluster]] {
			w.kept.addSlice(key, h)
			continue
		}
		if err := c.Client.Delete(ctx, h); err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("delete EndpointSlice %s/%s: %w", h.Namespace, h.Name, err))
		}
	}
	return errors.Join(errs...)
}

// importedSlices lists the EndpointSlices Wirespan imported for a service.
func (c *Controller) importedSlices(ctx context.Context, key serviceKey) ([]*discoveryv1.EndpointSlice, error) {
	var list discoveryv1.EndpointSliceList
	if err := c.Cache.List(ctx, &list, client.InNamespace(key.Namespace), client.MatchingFields{indexImportedSlices: key.Name}); err != nil {
		return nil, fmt.Errorf("list imported EndpointSlices of %s: %w", key, err)
	}
	out := make([]*discoveryv1.EndpointSlice, 0, len(list.Items))
	for i := range list.Items {
		out = append(out, &list.Items[i])
	}
	return out, nil
}

// removeStale deletes Wirespan's ServiceImports that no cluster exports
// any more, with their derived Service and EndpointSlices (the slices'
// owner references would also let the garbage collector do it), and
// derived Services whose ServiceImport is gone. An import that
// an unsettled cluster may still export (one it names in status.clusters,
// or whose slices it holds) stays until that cluster's set is known; only
// the slices of its other clusters (gone, or no longer exporting) go.
func (c *Controller) removeStale(ctx context.Context, w *world, imports map[serviceKey]mcs.Import) error {
	var sis mcsv1beta1.ServiceImportList
	if err := c.Cache.List(ctx, &sis); err != nil {
		return fmt.Errorf("list ServiceImports: %w", err)
	}
	var stale []*mcsv1beta1.ServiceImport
	for i := range sis.Items {
		si := &sis.Items[i]
		key := serviceKey{Namespace: si.Namespace, Name: si.Name}
		if _, ok := imports[key]; ok || !ours(si.Labels) {
			continue
		}
		stale = append(stale, si)
	}
	orphans, err := c.orphanedDerivedServices(ctx, imports, sis.Items)
	if err != nil {
		return err
	}
	return c.each(len(stale)+len(orphans), func(i int) error {
		if i >= len(stale) {
			svc := orphans[i-len(stale)]
			if err := c.Client.Delete(ctx, svc); err != nil && !apierrors.IsNotFound(err) {
				return fmt.Errorf("delete derived Service %s/%s, whose ServiceImport is gone: %w", svc.Namespace, svc.Name, err)
			}
			c.Log.Info("Removed a derived Service whose ServiceImport is gone", "service", svc.Namespace+"/"+svc.Name)
			return nil
		}
		si := stale[i]
		key := serviceKey{Namespace: si.Namespace, Name: si.Name}
		have, err := c.importedSlices(ctx, key)
		if err != nil {
			return err
		}
		unsettled := func(cluster string) bool { return w.unsettled[cluster] }
		guarded := slices.ContainsFunc(si.Status.Clusters, func(cs mcsv1beta1.ClusterStatus) bool { return unsettled(cs.Cluster) }) ||
			slices.ContainsFunc(have, func(h *discoveryv1.EndpointSlice) bool { return unsettled(h.Labels[mcsv1beta1.LabelSourceCluster]) })
		var errs []error
		if !guarded {
			if err := c.deleteDerivedService(ctx, key); err != nil {
				errs = append(errs, err)
			}
		}
		for _, h := range have {
			if guarded && unsettled(h.Labels[mcsv1beta1.LabelSourceCluster]) {
				w.kept.addSlice(key, h)
				continue
			}
			if err := c.Client.Delete(ctx, h); err != nil && !apierrors.IsNotFound(err) {
				errs = append(errs, fmt.Errorf("delete EndpointSlice %s/%s: %w", h.Namespace, h.Name, err))
			}
		}
		if guarded {
			w.kept.addImport(key, si)
			return errors.Join(errs...)
		}
		if err := c.Client.Delete(ctx, si); err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("delete ServiceImport %s: %w", key, err))
		} else {
			c.Log.Info("Removed an import nobody exports any more", "service", key.String())
		}
		return errors.Join(errs...)
	})
}

// orphanedDerivedServices returns the derived Services that no import
// and no ServiceImport accounts for: left by a ServiceImport deleted by
// hand while its export was also going, or by a gateway stopped between
// the two deletions. Only Services that carry Wirespan's labels and the
// name DerivedServiceName gives are considered.
func (c *Controller) orphanedDerivedServices(ctx context.Context, imports map[serviceKey]mcs.Import, sis []mcsv1beta1.ServiceImport) ([]*corev1.Service, error) {
	var svcs corev1.ServiceList
	if err := c.Cache.List(ctx, &svcs, client.MatchingLabels{v1alpha1.LabelManagedBy: v1alpha1.ManagedByValue}); err != nil {
		return nil, fmt.Errorf("list derived Services: %w", err)
	}
	imported := map[serviceKey]bool{}
	for _, si := range sis {
		imported[serviceKey{Namespace: si.Namespace, Name: si.Name}] = true
	}
	var out []*corev1.Service
	for i := range svcs.Items {
		svc := &svcs.Items[i]
		name, ok := svc.Labels[mcsv1beta1.LabelServiceName]
		key := serviceKey{Namespace: svc.Namespace, Name: name}
		if !ok || svc.Name != mcs.DerivedServiceName(name) || svc.DeletionTimestamp != nil {
			continue
		}
		if _, ok := imports[key]; ok || imported[key] {
			continue
		}
		out = append(out, svc)
	}
	return out, nil
}

func ptr[T any](v T) *T { return &v }
