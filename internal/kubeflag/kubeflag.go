// Package kubeflag parses the Kubernetes-shaped values of command-line
// flags that both binaries take.
package kubeflag

import (
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/types"
)

// NamespacedName parses "namespace/name".
func NamespacedName(s string) (types.NamespacedName, error) {
	ns, name, ok := strings.Cut(s, "/")
	if !ok || ns == "" || name == "" || strings.Contains(name, "/") {
		return types.NamespacedName{}, fmt.Errorf("%q is not namespace/name", s)
	}
	return types.NamespacedName{Namespace: ns, Name: name}, nil
}
