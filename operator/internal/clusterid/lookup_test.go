package clusterid

import (
	"context"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/wirespan/wirespan/internal/testenv"
)

// TestLookup reads the ClusterProperty from a real apiserver in the three
// states a cluster can be in: no ClusterProperty API at all (most clusters),
// the API without the property, and the property set.
func TestLookup(t *testing.T) {
	if testing.Short() {
		t.Skip("needs a control plane")
	}
	env, err := testenv.Start(testenv.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	ctx := context.Background()
	lookup := func() (string, bool, error) {
		// A new client each time, as the operator makes at startup: a
		// client's REST mapper remembers that an API group was missing.
		c, err := client.New(env.Config, client.Options{Scheme: env.Scheme})
		if err != nil {
			t.Fatal(err)
		}
		return Lookup(ctx, c)
	}

	if v, found, err := lookup(); err != nil || found {
		t.Fatalf("without the ClusterProperty API: %q, %v, %v; want not found, no error", v, found, err)
	}
	if out, err := env.Kubectl("", "apply", "-f", "../../testdata/clusterproperty-crd.yaml"); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if out, err := env.Kubectl("", "wait", "--for=condition=Established", "crd/clusterproperties.about.k8s.io", "--timeout=30s"); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	// Discovery of a new CRD can lag its Established condition a little.
	deadline := time.Now().Add(10 * time.Second)
	for {
		v, found, err := lookup()
		if err == nil && !found {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("with the API but no property: %q, %v, %v; want not found, no error", v, found, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if out, err := env.Kubectl("apiVersion: about.k8s.io/v1alpha1\nkind: ClusterProperty\nmetadata:\n  name: cluster.clusterset.k8s.io\nspec:\n  value: east\n", "apply", "-f", "-"); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if v, found, err := lookup(); err != nil || !found || v != "east" {
		t.Fatalf("with the property: %q, %v, %v; want \"east\", found", v, found, err)
	}
}
