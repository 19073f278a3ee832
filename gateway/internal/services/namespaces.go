package services

import (
	"maps"
	"slices"

	"github.com/wirespan/wirespan/internal/mcs"
)

// SetExportNamespaces gives, for the other clusters whose ClusterPeer
// lists spec.exportNamespaces, the only namespaces they may export from:
// an export of theirs from any other namespace is not imported. A cluster
// missing from it may export from any namespace (namespace sameness, the
// Multi-Cluster Services API's default). Every import is reconciled again
// if they changed.
func (c *Controller) SetExportNamespaces(namespaces map[string][]string) {
	c.mu.Lock()
	changed := !maps.EqualFunc(c.exportNamespaces, namespaces, slices.Equal)
	c.exportNamespaces = maps.Clone(namespaces)
	c.mu.Unlock()
	if changed {
		c.requeueAll()
	}
}

// inExportNamespaces leaves out the exports of key from clusters that may
// not export from its namespace, and counts and logs each once while it
// stays refused.
func (c *Controller) inExportNamespaces(key serviceKey, exports []mcs.Export) []mcs.Export {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.exportNamespaces) == 0 && len(c.outOfNamespace) == 0 {
		return exports
	}
	out := exports[:0:0]
	for _, e := range exports {
		mark := e.Cluster + "\x00" + key.String()
		allowed, listed := c.exportNamespaces[e.Cluster]
		if !listed || slices.Contains(allowed, key.Namespace) {
			delete(c.outOfNamespace, mark)
			out = append(out, e)
			continue
		}
		if !c.outOfNamespace[mark] {
			if c.outOfNamespace == nil {
				c.outOfNamespace = map[string]bool{}
			}
			c.outOfNamespace[mark] = true
			c.Metrics.badRecords.WithLabelValues("namespace").Inc()
			c.Log.Info("Refusing an export from a namespace its cluster may not export from (spec.exportNamespaces of its ClusterPeer)",
				"cluster", e.Cluster, "service", key.String(), "exportNamespaces", allowed)
		}
	}
	return out
}
