// Package clusterid decides this cluster's ID: the name of its self
// ClusterPeer. KEP-2149's ClusterProperty cluster.clusterset.k8s.io, when the
// cluster has one, is the authority; the --cluster-id flag must then agree
// with it.
package clusterid

import (
	"context"
	"fmt"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// PropertyName is the ClusterProperty that holds the cluster ID (KEP-2149).
const PropertyName = "cluster.clusterset.k8s.io"

// PropertyKind is the about.k8s.io ClusterProperty kind.
var PropertyKind = schema.GroupVersionKind{Group: "about.k8s.io", Version: "v1alpha1", Kind: "ClusterProperty"}

// Resolve picks the cluster ID from the flag and the ClusterProperty's value
// (found says whether the property exists) and checks it is an RFC 1123
// label, as ClusterPeer names must be.
func Resolve(flag, property string, found bool) (string, error) {
	id := flag
	switch {
	case found && flag != "" && flag != property:
		return "", fmt.Errorf("--cluster-id=%q disagrees with ClusterProperty %s, which says %q: drop the flag or make them agree",
			flag, PropertyName, property)
	case found:
		id = property
	case flag == "":
		return "", fmt.Errorf("no cluster ID: set --cluster-id, or create the about.k8s.io ClusterProperty %s", PropertyName)
	}
	if errs := validation.IsDNS1123Label(id); len(errs) > 0 {
		return "", fmt.Errorf("cluster ID %q is not usable as a ClusterPeer name: %s", id, strings.Join(errs, "; "))
	}
	return id, nil
}

// Lookup reads the ClusterProperty's value. found is false when the
// ClusterProperty API is not installed or the property does not exist.
func Lookup(ctx context.Context, c client.Reader) (value string, found bool, err error) {
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(PropertyKind)
	err = c.Get(ctx, client.ObjectKey{Name: PropertyName}, u)
	switch {
	case apierrors.IsNotFound(err), meta.IsNoMatchError(err): // no property, or no ClusterProperty API
		return "", false, nil
	case err != nil:
		return "", false, fmt.Errorf("read ClusterProperty %s: %w", PropertyName, err)
	}
	value, _, err = unstructured.NestedString(u.Object, "spec", "value")
	if err != nil {
		return "", false, fmt.Errorf("ClusterProperty %s: spec.value: %w", PropertyName, err)
	}
	return value, true, nil
}
