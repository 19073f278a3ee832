package services

import (
	"context"
	"errors"
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	mcsv1beta1 "sigs.k8s.io/mcs-api/pkg/apis/v1beta1"

	"github.com/wirespan/wirespan/internal/mcs"
)

// writeImportOf brings the import of one service in line with exports,
// every cluster's export of it (none: nothing to import), and feeds DNS.
// Imports wait for their namespace to exist.
func (c *Controller) writeImportOf(ctx context.Context, key serviceKey, imp mcs.Import, exports []mcs.Export, remote remoteInputs) error {
	present, err := c.namespacePresent(ctx, key.Namespace)
	if err != nil || !present {
		c.setDNS(key, nil)
		return err
	}
	if len(exports) == 0 {
		return c.removeImport(ctx, key, remote)
	}
	families := c.serviceFamilies()
	imp, addressable := mcs.ForFamilies(imp, families)
	if !addressable {
		c.Log.V(1).Info("An import has no IP family this cluster's Services have: no clusterset IP", "service", key.String(),
			"importFamilies", imp.Spec.IPFamilies, "clusterFamilies", families)
	}
	st := mcs.ImportState{Addressable: addressable, ClusterFamilies: families}
	for _, cl := range imp.Clusters {
		if s, ok := remote.states[cl]; ok && s != clusterLive {
			st.Silent = append(st.Silent, cl)
		}
	}
	endpoints := remote.endpointsOf(exports)
	written, err := c.writeImport(ctx, key, imp, st, endpoints, remote)
	if written.si != nil {
		c.setDNS(key, dnsFor(key, imp.Spec, written.ips, endpoints, written.keptSlices))
	}
	return err
}

// namespacePresent reports whether namespace ns exists and is not going.
func (c *Controller) namespacePresent(ctx context.Context, ns string) (bool, error) {
	var n corev1.Namespace
	switch err := c.Cache.Get(ctx, client.ObjectKey{Name: ns}, &n); {
	case apierrors.IsNotFound(err):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("read namespace %s: %w", ns, err)
	}
	return n.DeletionTimestamp == nil, nil
}

// importWritten is what writeImport left: the ServiceImport (nil if none
// of ours), its clusterset IPs, and the slices kept for unsettled
// clusters.
type importWritten struct {
	si         *mcsv1beta1.ServiceImport
	ips        []string
	keptSlices []*discoveryv1.EndpointSlice
}

// writeImport writes one import. An import that is not addressable here
// (no IP family in common with this cluster) gets a ServiceImport and
// EndpointSlices but no derived Service.
//
// The derived Service is written before the ServiceImport, so that a new
// ServiceImport is created with its IPs: nobody sees a ClusterSetIP
// import without them, and a new import costs four writes (Service,
// ServiceImport, its status, one EndpointSlice per source cluster), not
// the five that creating the ServiceImport first and adding its IPs would.
// It is why the derived Service has no owner reference (the ServiceImport
// it would name does not exist yet when it is created): removeImport
// deletes it with its import, and any derived Service whose import is
// gone.
func (c *Controller) writeImport(ctx context.Context, key serviceKey, imp mcs.Import, st mcs.ImportState, endpoints []mcs.Export, remote remoteInputs) (importWritten, error) {
	want := mcs.ServiceImport(imp, key.Namespace, key.Name)
	si, err := read[mcsv1beta1.ServiceImport](ctx, c, key, key)
	switch {
	case err != nil:
		return importWritten{}, err
	case si != nil && !ours(si.Labels):
		c.Log.V(1).Info("Leaving alone a ServiceImport Wirespan did not create", "serviceImport", key.String())
		return importWritten{}, nil
	}

	var errs []error
	if derived := mcs.DerivedService(imp, key.Namespace, key.Name); derived != nil && st.Addressable {
		ips, err := c.writeDerivedService(ctx, key, derived)
		st.IPs = ips
		if err != nil {
			errs = append(errs, err)
			st.Pending = "Cannot write the derived Service that holds the clusterset IP: " + err.Error()
		}
	} else if err := c.deleteDerivedService(ctx, key); err != nil {
		errs = append(errs, err)
	}
	want.Spec.IPs = st.IPs
	if len(st.IPs) == 0 && st.Pending != "" && si != nil {
		want.Spec.IPs = si.Spec.IPs // keep what clients use
	}
	if si == nil {
		created := want.DeepCopy()
		created.Status = mcsv1beta1.ServiceImportStatus{}
		if err := c.Client.Create(ctx, created); err != nil {
			return importWritten{}, errors.Join(append(errs, fmt.Errorf("create ServiceImport %s: %w", key, err))...)
		}
		c.writes.wrote(key, created)
		c.Log.Info("Imported a service", "service", key.String(), "clusters", imp.Clusters, "ips", created.Spec.IPs)
		si = created
	} else if updated, changed := mcs.ApplyServiceImport(si, want); changed {
		if err := c.Client.Update(ctx, updated); err != nil {
			errs = append(errs, fmt.Errorf("update ServiceImport %s: %w", key, err))
		} else {
			c.writes.wrote(key, updated)
			si = updated
		}
	}

	owner := metav1.OwnerReference{
		APIVersion: mcsv1beta1.GroupVersion.String(), Kind: "ServiceImport",
		Name: si.Name, UID: si.UID, Controller: ptr(true),
	}
	wantSlices := mcs.EndpointSlices(imp, endpoints, key.Namespace, key.Name)
	kept, slicesErr := c.writeSlices(ctx, key, wantSlices, owner, remote)
	errs = append(errs, slicesErr)
	want.Status.Conditions = []metav1.Condition{mcs.ImportReady(imp, st, si.Generation)}
	want.Status.EndpointSliceObjects = mcsv1beta1.EndpointSliceObjectsAbsent
	if len(wantSlices) > 0 || len(kept) > 0 {
		want.Status.EndpointSliceObjects = mcsv1beta1.EndpointSliceObjectsPresent
	}
	if updated, changed := mcs.ApplyServiceImportStatus(si, want); changed {
		if err := c.Client.Status().Update(ctx, updated); err != nil {
			errs = append(errs, fmt.Errorf("update status of ServiceImport %s: %w", key, err))
		} else {
			c.writes.wrote(key, updated)
		}
	}
	return importWritten{si: si, ips: want.Spec.IPs, keptSlices: kept}, errors.Join(errs...)
}

// writeDerivedService creates or updates the derived Service and returns
// its cluster IPs, which the ServiceImport publishes. The Service is never
// replaced unless its IP family must change, so its IPs stay for the life
// of the import.
func (c *Controller) writeDerivedService(ctx context.Context, key serviceKey, want *corev1.Service) ([]string, error) {
	name := client.ObjectKeyFromObject(want)
	have, err := read[corev1.Service](ctx, c, key, name)
	switch {
	case err != nil:
		return nil, err
	case have == nil:
		return c.createDerivedService(ctx, key, want)
	case mcs.ServiceNeedsRecreate(have, want):
		if err := c.Client.Delete(ctx, have); err != nil && !apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("delete derived Service %s to recreate it: %w", name, err)
		}
		c.writes.deleted(key, have)
		return c.createDerivedService(ctx, key, want)
	}
	if updated, changed := mcs.ApplyService(have, want); changed {
		if err := c.Client.Update(ctx, updated); err != nil {
			return have.Spec.ClusterIPs, fmt.Errorf("update derived Service %s: %w", name, err)
		}
		c.writes.wrote(key, updated)
	}
	return have.Spec.ClusterIPs, nil
}

// createDerivedService creates the derived Service. A PreferDualStack one
// lists only its primary family: the API server refuses a listed family
// that the cluster lacks, PreferDualStack or not, and adds the second
// family itself where the cluster has both. mcs.ApplyService accepts
// either outcome as is.
func (c *Controller) createDerivedService(ctx context.Context, key serviceKey, want *corev1.Service) ([]string, error) {
	created := want.DeepCopy()
	if p := created.Spec.IPFamilyPolicy; p != nil && *p == corev1.IPFamilyPolicyPreferDualStack && len(created.Spec.IPFamilies) > 1 {
		created.Spec.IPFamilies = created.Spec.IPFamilies[:1]
	}
	if err := c.Client.Create(ctx, created); err != nil {
		return nil, fmt.Errorf("create derived Service %s/%s: %w", created.Namespace, created.Name, err)
	}
	c.writes.wrote(key, created)
	return created.Spec.ClusterIPs, nil
}

// deleteDerivedService deletes the derived Service of key, if there is one.
func (c *Controller) deleteDerivedService(ctx context.Context, key serviceKey) error {
	name := serviceKey{Namespace: key.Namespace, Name: mcs.DerivedServiceName(key.Name)}
	have, err := read[corev1.Service](ctx, c, key, name)
	if have == nil || err != nil {
		return err
	}
	if _, ok := derivedFrom(have); !ok {
		return nil // not ours: only its name is
	}
	if err := c.Client.Delete(ctx, have); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete derived Service %s: %w", name, err)
	}
	c.writes.deleted(key, have)
	return nil
}

// writeSlices makes the imported EndpointSlices of one service equal to
// want, except that slices of unsettled live clusters are not removed:
// they are returned.
func (c *Controller) writeSlices(ctx context.Context, key serviceKey, want []*discoveryv1.EndpointSlice, owner metav1.OwnerReference, remote remoteInputs) ([]*discoveryv1.EndpointSlice, error) {
	have, err := c.importedSlices(ctx, key)
	if err != nil {
		return nil, err
	}
	var errs []error
	wanted := map[string]bool{}
	for _, s := range want {
		wanted[s.Name] = true
		s.OwnerReferences = []metav1.OwnerReference{owner}
		i := slices.IndexFunc(have, func(h *discoveryv1.EndpointSlice) bool { return h.Name == s.Name })
		if i < 0 {
			if err := c.Client.Create(ctx, s); err != nil {
				errs = append(errs, fmt.Errorf("create EndpointSlice %s/%s: %w", s.Namespace, s.Name, err))
			} else {
				c.writes.wrote(key, s)
			}
			continue
		}
		if updated, changed := mcs.ApplyEndpointSlice(have[i], s); changed {
			if err := c.Client.Update(ctx, updated); err != nil {
				errs = append(errs, fmt.Errorf("update EndpointSlice %s/%s: %w", s.Namespace, s.Name, err))
			} else {
				c.writes.wrote(key, updated)
			}
		}
	}
	var kept []*discoveryv1.EndpointSlice
	for _, h := range have {
		if wanted[h.Name] {
			continue
		}
		if remote.keeps(h.Labels[mcsv1beta1.LabelSourceCluster], true) {
			kept = append(kept, h)
			continue
		}
		errs = append(errs, c.deleteSlice(ctx, key, h))
	}
	return kept, errors.Join(errs...)
}

func (c *Controller) deleteSlice(ctx context.Context, key serviceKey, s *discoveryv1.EndpointSlice) error {
	if err := c.Client.Delete(ctx, s); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete EndpointSlice %s/%s: %w", s.Namespace, s.Name, err)
	}
	c.writes.deleted(key, s)
	return nil
}

// removeImport removes what was imported for a service that no cluster
// exports any more: its ServiceImport, derived Service and EndpointSlices
// (the slices' owner references would also let the garbage collector do
// it), or a derived Service whose ServiceImport is gone. An import that an
// unsettled cluster may still export (one it names in status.clusters, or
// whose slices it holds) stays until that cluster's set is known, and DNS
// keeps answering for it; only the slices of its other clusters go.
func (c *Controller) removeImport(ctx context.Context, key serviceKey, remote remoteInputs) error {
	si, err := read[mcsv1beta1.ServiceImport](ctx, c, key, key)
	if err != nil {
		return err
	}
	if si != nil && !ours(si.Labels) {
		c.setDNS(key, nil)
		return nil
	}
	have, err := c.importedSlices(ctx, key)
	if err != nil {
		return err
	}
	guarded := si != nil && (slices.ContainsFunc(si.Status.Clusters, func(cs mcsv1beta1.ClusterStatus) bool { return remote.keeps(cs.Cluster, false) }) ||
		slices.ContainsFunc(have, func(h *discoveryv1.EndpointSlice) bool {
			return remote.keeps(h.Labels[mcsv1beta1.LabelSourceCluster], false)
		}))
	var errs []error
	var kept []*discoveryv1.EndpointSlice
	for _, h := range have {
		if guarded && remote.keeps(h.Labels[mcsv1beta1.LabelSourceCluster], true) {
			kept = append(kept, h)
			continue
		}
		errs = append(errs, c.deleteSlice(ctx, key, h))
	}
	if guarded {
		if si.Spec.Type != mcsv1beta1.ClusterSetIP || len(si.Spec.IPs) > 0 {
			c.setDNS(key, dnsFor(key, si.Spec, si.Spec.IPs, nil, kept))
		}
		return errors.Join(errs...)
	}
	c.setDNS(key, nil)
	if err := c.deleteDerivedService(ctx, key); err != nil {
		errs = append(errs, err)
	}
	if si == nil {
		return errors.Join(errs...)
	}
	if err := c.Client.Delete(ctx, si); err != nil && !apierrors.IsNotFound(err) {
		errs = append(errs, fmt.Errorf("delete ServiceImport %s: %w", key, err))
	} else {
		c.writes.deleted(key, si)
		c.Log.Info("Removed an import nobody exports any more", "service", key.String())
	}
	return errors.Join(errs...)
}
