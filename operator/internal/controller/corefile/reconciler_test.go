package corefile

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/wirespan/wirespan/operator/internal/coredns"
	"github.com/wirespan/wirespan/operator/internal/coredns/corefiletest"
)

// kubeadm is the Corefile kubeadm installs.
const kubeadm = corefiletest.Kubeadm

var (
	gw1 = netip.MustParseAddrPort("10.0.0.11:5353")
	gw2 = netip.MustParseAddrPort("10.0.0.12:5353")
)

func ensured(t *testing.T, upstreams ...netip.AddrPort) string {
	t.Helper()
	s, _, err := coredns.Ensure(kubeadm, "clusterset.local", upstreams)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestAddUpdateRemove runs the operator's life: flag set, set again,
// changed, then emptied, which must give back the original Corefile.
func TestAddUpdateRemove(t *testing.T) {
	key := createConfigMap(t, "coredns-lifecycle", map[string]string{Key: kubeadm, "other": "untouched"})

	stop := runController(t, key, gw1, gw2)
	corefileIs(t, key, "block added", ensured(t, gw1, gw2))

	// A second pass, and time for the running controller to react to its
	// own update, write nothing.
	rv := getConfigMap(t, key).ResourceVersion
	r := &Reconciler{Client: env.Client, ConfigMap: key, Zone: "clusterset.local", Upstreams: []netip.AddrPort{gw1, gw2}}
	if _, err := r.Reconcile(context.Background(), reconcile.Request{NamespacedName: key}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	if got := getConfigMap(t, key).ResourceVersion; got != rv {
		t.Fatalf("resourceVersion %s → %s: a pass with nothing to do wrote the ConfigMap", rv, got)
	}
	stop()

	stop = runController(t, key, gw2)
	corefileIs(t, key, "block updated", ensured(t, gw2))
	stop()

	runController(t, key)
	corefileIs(t, key, "block removed, the rest byte-identical", kubeadm)
	if got := getConfigMap(t, key).Data["other"]; got != "untouched" {
		t.Errorf("other key: %q", got)
	}
}

// TestConfigMapAppearsLater: a missing ConfigMap is logged once, is no
// error, and the controller acts when it is created.
func TestConfigMapAppearsLater(t *testing.T) {
	var logs logLines
	ctx := log.IntoContext(context.Background(), logs.logger())
	r := &Reconciler{Client: env.Client, ConfigMap: keyOf("coredns-later"), Zone: "clusterset.local", Upstreams: []netip.AddrPort{gw1}}
	for range 3 {
		if res, err := r.Reconcile(ctx, reconcile.Request{NamespacedName: r.ConfigMap}); err != nil || !res.IsZero() {
			t.Fatalf("missing ConfigMap: %v, %v; want no error and no requeue", res, err)
		}
	}
	if n := logs.count("CoreDNS ConfigMap not found"); n != 1 {
		t.Errorf("logged %d times; want once:\n%s", n, &logs)
	}

	runController(t, r.ConfigMap, gw1)
	time.Sleep(500 * time.Millisecond) // let it look, and find nothing
	key := createConfigMap(t, "coredns-later", map[string]string{Key: kubeadm})
	corefileIs(t, key, "block added once the ConfigMap exists", ensured(t, gw1))
}

// TestLeftAlone: Corefiles the controller must not edit are logged, not
// retried, and not written.
func TestLeftAlone(t *testing.T) {
	tests := []struct {
		name string
		data map[string]string
		log  string
	}{
		{"user-written block", map[string]string{Key: kubeadm + "clusterset.local:53 {\n    forward . 10.1.1.1\n}\n"}, "already has a server block for clusterset.local"},
		{"damaged markers", map[string]string{Key: kubeadm + "# wirespan: begin clusterset.local\n"}, "fix the Corefile's Wirespan markers by hand"},
		{"no Corefile key", map[string]string{"Corefile.old": kubeadm}, "ConfigMap has no Corefile key"},
		{"no data", nil, "ConfigMap has no Corefile key"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key := createConfigMap(t, "coredns-alone-"+string(rune('a'+i)), tt.data)
			rv := getConfigMap(t, key).ResourceVersion
			for _, ups := range [][]netip.AddrPort{{gw1}, nil} {
				var logs logLines
				r := &Reconciler{Client: env.Client, ConfigMap: key, Zone: "clusterset.local", Upstreams: ups}
				res, err := r.Reconcile(log.IntoContext(context.Background(), logs.logger()), reconcile.Request{NamespacedName: key})
				if err != nil || !res.IsZero() {
					t.Fatalf("upstreams %v: %v, %v; want no error and no requeue", ups, res, err)
				}
				if ups != nil && logs.count(tt.log) != 1 {
					t.Errorf("log lacks %q:\n%s", tt.log, &logs)
				}
			}
			if got := getConfigMap(t, key).ResourceVersion; got != rv {
				t.Errorf("ConfigMap written (resourceVersion %s → %s)", rv, got)
			}
		})
	}
}
