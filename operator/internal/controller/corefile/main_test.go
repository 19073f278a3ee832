package corefile

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	"go.uber.org/zap/zapcore"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/wirespan/wirespan/internal/poll"
	"github.com/wirespan/wirespan/internal/testenv"
)

var env *testenv.Env

// TestMain runs one real control plane for the package. Each test runs its
// own controllers, on its own ConfigMap in kube-system, so that it can stop
// one and start another with other flags, as an operator restart would.
func TestMain(m *testing.M) {
	ctrl.SetLogger(zap.New(zap.UseDevMode(true), zap.WriteTo(os.Stderr), zap.Level(zapLevel())))
	os.Exit(testenv.Main(m, testenv.Options{}, func(e *testenv.Env) error {
		env = e
		return nil
	}))
}

// zapLevel keeps test output to errors unless WIRESPAN_TEST_VERBOSE is set.
func zapLevel() zapcore.Level {
	if os.Getenv("WIRESPAN_TEST_VERBOSE") != "" {
		return zapcore.DebugLevel
	}
	return zapcore.ErrorLevel
}

// runController runs the controller for cm with the given upstreams (none:
// remove) in a manager of its own, with the cache restricted as the
// operator restricts it, until the returned stop is called or the test
// ends.
func runController(t *testing.T, cm types.NamespacedName, upstreams ...netip.AddrPort) (stop func()) {
	t.Helper()
	return runControllerAs(t, env.Config, cm, upstreams...)
}

// runControllerAs is runController with the client configuration cfg.
func runControllerAs(t *testing.T, cfg *rest.Config, cm types.NamespacedName, upstreams ...netip.AddrPort) (stop func()) {
	t.Helper()
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:  env.Scheme,
		Metrics: metricsserver.Options{BindAddress: "0"},
		Cache:   cache.Options{ByObject: map[client.Object]cache.ByObject{&corev1.ConfigMap{}: CacheByObject(cm)}},
		// Every test names its controller "corefile", as the operator does.
		Controller: config.Controller{SkipNameValidation: ptr.To(true)},
	})
	if err != nil {
		t.Fatal(err)
	}
	r := &Reconciler{Client: mgr.GetClient(), ConfigMap: cm, Zone: "clusterset.local", Upstreams: upstreams}
	if err := r.SetupWithManager(mgr); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := mgr.Start(ctx); err != nil {
			t.Errorf("manager: %v", err)
		}
	}()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	return stop
}

// keyOf names a ConfigMap in kube-system, where CoreDNS's usually is.
func keyOf(name string) types.NamespacedName {
	return types.NamespacedName{Namespace: "kube-system", Name: name}
}

// createConfigMap creates a ConfigMap in kube-system, deleted when the test
// ends.
func createConfigMap(t *testing.T, name string, data map[string]string) types.NamespacedName {
	t.Helper()
	key := keyOf(name)
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name}, Data: data}
	if err := env.Client.Create(context.Background(), cm); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), cm) })
	return key
}

func getConfigMap(t *testing.T, key types.NamespacedName) *corev1.ConfigMap {
	t.Helper()
	var cm corev1.ConfigMap
	if err := env.Client.Get(context.Background(), key, &cm); err != nil {
		t.Fatal(err)
	}
	return &cm
}

// eventually waits until check returns nil, at most 30 s.
func eventually(t *testing.T, what string, check func() error) {
	t.Helper()
	poll.Until(t, 30*time.Second, what, check)
}

// corefileIs waits until the ConfigMap's Corefile is want.
func corefileIs(t *testing.T, key types.NamespacedName, what, want string) {
	t.Helper()
	eventually(t, what, func() error {
		if got := getConfigMap(t, key).Data[Key]; got != want {
			return fmt.Errorf("Corefile is\n%s\nwant\n%s", got, want)
		}
		return nil
	})
}

// logLines is a logger that keeps what is logged, one line per call.
type logLines struct {
	mu    sync.Mutex
	lines []string
}

func (l *logLines) logger() logr.Logger {
	return funcr.New(func(prefix, args string) {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.lines = append(l.lines, prefix+" "+args)
	}, funcr.Options{Verbosity: 1})
}

// count says how many lines contain s.
func (l *logLines) count(s string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, line := range l.lines {
		if strings.Contains(line, s) {
			n++
		}
	}
	return n
}

func (l *logLines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}
