package services

import (
	"context"
	"time"

	mcsv1beta1 "sigs.k8s.io/mcs-api/pkg/apis/v1beta1"
)

// warmupRecheck is how soon a service whose import waited for the warm-up
// is reconciled again.
const warmupRecheck = 250 * time.Millisecond

// warmedUp says whether imports may be written: Warmup has passed since
// this gateway took the role, or gossip has brought a complete set of
// records from every cluster that this cluster's imports name. Until
// then, a cluster missing from gossip is one the new gateway has not heard
// from yet, not one whose exports went, and writing imports without it
// would withdraw them here for the length of a failover.
func (c *Controller) warmedUp(ctx context.Context) bool {
	c.mu.Lock()
	warm, since := c.warm, c.activatedAt
	remote := c.remote
	c.mu.Unlock()
	if warm {
		return true
	}
	if time.Since(since) < c.Warmup {
		var sis mcsv1beta1.ServiceImportList
		if err := c.Cache.List(ctx, &sis); err != nil {
			return false
		}
		for i := range sis.Items {
			if !ours(sis.Items[i].Labels) {
				continue
			}
			for _, cs := range sis.Items[i].Status.Clusters {
				if cs.Cluster == c.ClusterID {
					continue
				}
				if rc, ok := remote[cs.Cluster]; !ok || !rc.complete {
					return false
				}
			}
		}
	}
	c.mu.Lock()
	c.warm = true
	c.mu.Unlock()
	return true
}
