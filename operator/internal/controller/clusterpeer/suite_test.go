package clusterpeer

import (
	"context"
	"fmt"
	"os"
	"testing"

	"go.uber.org/zap/zapcore"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/wirespan/wirespan/internal/poll"
	"github.com/wirespan/wirespan/internal/testenv"
)

const (
	clusterID = "east"
	// operatorVersion is what the controller under test publishes.
	operatorVersion = "v0.0.0-clusterpeer-test"
)

var (
	env       *testenv.Env
	k8s       client.Client
	keySecret = types.NamespacedName{Namespace: "wirespan-system", Name: "wirespan-cluster-key"}
)

// TestMain runs one real control plane and one controller for the package.
// Tests share them, so each test uses its own ClusterPeer and Node names and
// removes what it creates.
func TestMain(m *testing.M) {
	ctrl.SetLogger(zap.New(zap.UseDevMode(true), zap.WriteTo(os.Stderr), zap.Level(zapLevel())))
	os.Exit(testenv.Main(m, testenv.Options{}, startController))
}

// startController creates the key Secret's namespace and runs the
// controller for the rest of the test binary's life.
func startController(e *testenv.Env) error {
	env, k8s = e, e.Client
	ctx := context.Background()
	if err := k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: keySecret.Namespace}}); err != nil {
		return err
	}
	mgr, err := ctrl.NewManager(env.Config, ctrl.Options{Scheme: env.Scheme, Metrics: metricsserver.Options{BindAddress: "0"}})
	if err != nil {
		return err
	}
	r := &Reconciler{Client: mgr.GetClient(), ClusterID: clusterID, KeySecret: keySecret, Version: operatorVersion}
	if err := r.SetupWithManager(mgr); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := mgr.Start(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "manager:", err)
			os.Exit(1)
		}
	}()
	e.Cleanup(func() { cancel(); <-done })
	return nil
}

// zapLevel keeps test output to errors unless WIRESPAN_TEST_VERBOSE is set.
func zapLevel() zapcore.Level {
	if os.Getenv("WIRESPAN_TEST_VERBOSE") != "" {
		return zapcore.DebugLevel
	}
	return zapcore.ErrorLevel
}

// eventually waits until check returns nil, at most timeout.
var eventually = poll.Until

// serviceCIDRs lists the ServiceCIDR objects, to learn what the apiserver made.
func serviceCIDRs(t testing.TB) []networkingv1.ServiceCIDR {
	t.Helper()
	var l networkingv1.ServiceCIDRList
	if err := k8s.List(context.Background(), &l); err != nil {
		t.Fatal(err)
	}
	return l.Items
}
