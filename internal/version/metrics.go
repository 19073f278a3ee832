package version

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// BuildInfoName is the name of the build info gauge.
const BuildInfoName = "wirespan_build_info"

// Register adds wirespan_build_info{component,version} 1 to reg, the
// usual Prometheus idiom: a query can join on it to tell series of old and
// new binaries apart during an upgrade, and count what runs which version.
func Register(reg prometheus.Registerer, component string) error {
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        BuildInfoName,
		Help:        "Always 1; its labels say which Wirespan component this is and the version it was built as.",
		ConstLabels: prometheus.Labels{"component": component, "version": Get()},
	})
	g.Set(1)
	if err := reg.Register(g); err != nil {
		return fmt.Errorf("register %s: %w", BuildInfoName, err)
	}
	return nil
}
