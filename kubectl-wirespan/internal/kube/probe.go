package kube

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	wirespanv1alpha1 "github.com/wirespan/wirespan/apis/v1alpha1"
	"github.com/wirespan/wirespan/kubectl-wirespan/internal/model"
)

// Probe request defaults.
const (
	// DefaultProbeTimeout is how long diagnose waits for an answer.
	DefaultProbeTimeout = 30 * time.Second
	// probeInterval is how often the request is read while waiting.
	probeInterval = 250 * time.Millisecond
	// deleteTimeout bounds the delete that always follows, on a context
	// of its own: the command's may be done (timeout, Ctrl-C).
	deleteTimeout = 5 * time.Second
)

// ProbeLabels mark the ProbeRequests this plugin creates.
var ProbeLabels = map[string]string{"app.kubernetes.io/managed-by": "kubectl-wirespan"}

// ProbeOptions say what to ask and how long to wait.
type ProbeOptions struct {
	// Zone is the clusterset DNS zone the ServiceImports' names are in.
	Zone string
	// Timeout is how long to wait for the answer (DefaultProbeTimeout
	// when zero).
	Timeout time.Duration
	// Interval is how often to read the request meanwhile (250 ms when
	// zero).
	Interval time.Duration
}

// ProbeAll asks the active gateway of every cluster that could be read
// to probe from its node, all at once, and sets each Cluster's Probe.
// Each request is deleted afterwards, whatever happened.
func ProbeAll(ctx context.Context, targets []Target, where Where, set *model.Clusterset, opts ProbeOptions) error {
	scheme, err := newScheme()
	if err != nil {
		return err
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultProbeTimeout
	}
	if opts.Interval <= 0 {
		opts.Interval = probeInterval
	}
	var wg sync.WaitGroup
	for i, t := range targets {
		c := &set.Clusters[i]
		if _, unreachable := c.Errors[model.ReadPeers]; unreachable {
			continue // every check of this cluster warns already
		}
		spec := wirespanv1alpha1.ProbeRequestSpec{DNSNames: model.ProbeDNSNames(c.Imports, opts.Zone)}
		wg.Go(func() {
			cl, err := client.New(t.Config, client.Options{Scheme: scheme})
			if err != nil {
				c.Probe = &model.Probe{Namespace: where.Namespace, Spec: spec, Missing: model.ProbeFailed, Detail: fmt.Sprintf("client for context %s: %v", t.Context, err)}
				return
			}
			c.Probe = probe(ctx, cl, where.Namespace, spec, opts)
		})
	}
	wg.Wait()
	return nil
}

// probe creates one ProbeRequest, waits for its completionTime and
// deletes it.
func probe(ctx context.Context, cl client.Client, namespace string, spec wirespanv1alpha1.ProbeRequestSpec, opts ProbeOptions) *model.Probe {
	p := &model.Probe{Namespace: namespace, Spec: spec}
	req := &wirespanv1alpha1.ProbeRequest{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, GenerateName: "diagnose-", Labels: ProbeLabels},
		Spec:       spec,
	}
	if err := cl.Create(ctx, req); err != nil {
		p.Missing, p.Detail = createFailed(err, namespace)
		return p
	}
	p.Request = req.Name
	defer func() {
		dctx, cancel := context.WithTimeout(context.Background(), deleteTimeout)
		defer cancel()
		if err := cl.Delete(dctx, req); client.IgnoreNotFound(err) != nil {
			p.DeleteError = err.Error()
		}
	}()
	answer, err := waitAnswer(ctx, cl, client.ObjectKeyFromObject(req), opts)
	switch {
	case err == nil:
		p.Answer = answer
	case errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil:
		p.Missing, p.Detail = model.ProbeTimeout, fmt.Sprintf("no gateway completed ProbeRequest %s/%s in %s", namespace, req.Name, opts.Timeout)
	default:
		p.Missing, p.Detail = model.ProbeFailed, fmt.Sprintf("ProbeRequest %s/%s: %v", namespace, req.Name, err)
	}
	return p
}

// waitAnswer reads the request until its status has a completionTime.
// A read that fails is tried again until the wait is over (the API server
// may be busy); a request that is gone is an error at once.
func waitAnswer(ctx context.Context, cl client.Client, key client.ObjectKey, opts ProbeOptions) (*wirespanv1alpha1.ProbeRequestStatus, error) {
	ctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()
	tick := time.NewTicker(opts.Interval)
	defer tick.Stop()
	var last error
	for {
		var req wirespanv1alpha1.ProbeRequest
		err := cl.Get(ctx, key, &req)
		switch {
		case err == nil && req.Status.CompletionTime != nil:
			return &req.Status, nil
		case apierrors.IsNotFound(err):
			return nil, errors.New("deleted before it was answered")
		case err != nil && ctx.Err() == nil:
			last = err
		}
		select {
		case <-ctx.Done():
			if last != nil {
				return nil, fmt.Errorf("%w (last read: %w)", ctx.Err(), last)
			}
			return nil, ctx.Err()
		case <-tick.C:
		}
	}
}

// createFailed says why a ProbeRequest could not be created.
func createFailed(err error, namespace string) (missing, detail string) {
	var status apierrors.APIStatus
	switch {
	case apierrors.IsForbidden(err):
		return model.ProbeForbidden, err.Error()
	case meta.IsNoMatchError(err):
		return model.ProbeUnsupported, "the API server has no ProbeRequest kind in wirespan.io/v1alpha1: " + err.Error()
	case apierrors.IsNotFound(err) && errors.As(err, &status) && status.Status().Details != nil && status.Status().Details.Kind == "namespaces":
		return model.ProbeFailed, "namespace " + namespace + " does not exist: give --namespace, where Wirespan is installed"
	case apierrors.IsNotFound(err):
		// The kind was known when the client mapped it, and the resource
		// is gone since: the CRD was removed.
		return model.ProbeUnsupported, "the API server does not serve proberequests.wirespan.io: " + err.Error()
	}
	return model.ProbeFailed, "create a ProbeRequest in " + namespace + ": " + err.Error()
}
