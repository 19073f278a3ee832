package services

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	mcsv1beta1 "sigs.k8s.io/mcs-api/pkg/apis/v1beta1"

	"github.com/wirespan/wirespan/internal/mcs"
)

// Informer events become keys: each object names the one service it
// belongs to (keyOf), and only that service is reconciled.

// watched are the kinds whose changes queue services.
func watched() []client.Object {
	return []client.Object{
		&mcsv1beta1.ServiceExport{}, &mcsv1beta1.ServiceImport{}, &corev1.Service{},
		&discoveryv1.EndpointSlice{}, &corev1.Namespace{},
	}
}

// watch registers the event handlers; unwatch removes them.
func (c *Controller) watch(ctx context.Context) (unwatch func(), err error) {
	var undo []func()
	unwatch = func() {
		for _, u := range undo {
			u()
		}
	}
	for _, obj := range watched() {
		inf, err := c.Cache.GetInformer(ctx, obj)
		if err != nil {
			unwatch()
			return nil, fmt.Errorf("watch %T: %w", obj, err)
		}
		reg, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
			AddFunc:    func(o any) { c.onEvent(o, false) },
			UpdateFunc: func(_, o any) { c.onEvent(o, false) },
			DeleteFunc: func(o any) { c.onEvent(o, true) },
		})
		if err != nil {
			unwatch()
			return nil, fmt.Errorf("watch %T: %w", obj, err)
		}
		undo = append(undo, func() { _ = inf.RemoveEventHandler(reg) })
	}
	return unwatch, nil
}

// onEvent queues the service an object belongs to, and lets the record of
// the controller's own writes see it.
func (c *Controller) onEvent(o any, deleted bool) {
	if t, ok := o.(toolscache.DeletedFinalStateUnknown); ok {
		o, deleted = t.Obj, true
	}
	obj, ok := o.(client.Object)
	if !ok {
		return
	}
	if ns, ok := obj.(*corev1.Namespace); ok {
		c.enqueueNamespace(ns.Name)
		return
	}
	key, ok := keyOf(obj)
	if !ok {
		return
	}
	c.writes.observe(key, obj, deleted)
	c.queue.Add(key)
}

// keyOf returns the service an object belongs to: a ServiceExport or
// ServiceImport its own; a derived Service and an imported EndpointSlice
// the import they were made for; any other Service itself, any other
// EndpointSlice its Service.
func keyOf(obj client.Object) (serviceKey, bool) {
	ns, labels := obj.GetNamespace(), obj.GetLabels()
	switch obj.(type) {
	case *mcsv1beta1.ServiceExport, *mcsv1beta1.ServiceImport:
		return serviceKey{Namespace: ns, Name: obj.GetName()}, true
	case *corev1.Service:
		if name, ok := derivedFrom(obj); ok {
			return serviceKey{Namespace: ns, Name: name}, true
		}
		return serviceKey{Namespace: ns, Name: obj.GetName()}, true
	case *discoveryv1.EndpointSlice:
		if name, ok := labels[mcsv1beta1.LabelServiceName]; ok && labels[discoveryv1.LabelManagedBy] == mcs.ManagedBy {
			return serviceKey{Namespace: ns, Name: name}, true
		}
		if name, ok := labels[discoveryv1.LabelServiceName]; ok {
			return serviceKey{Namespace: ns, Name: name}, true
		}
	}
	return serviceKey{}, false
}

// derivedFrom returns the import a Service was derived for: it carries
// Wirespan's labels and the name DerivedServiceName gives.
func derivedFrom(svc client.Object) (string, bool) {
	labels := svc.GetLabels()
	name, ok := labels[mcsv1beta1.LabelServiceName]
	if !ok || !ours(labels) || svc.GetName() != mcs.DerivedServiceName(name) {
		return "", false
	}
	return name, true
}

// enqueueNamespace queues the services of a namespace that was created
// or is going: imports wait for their namespace.
func (c *Controller) enqueueNamespace(ns string) {
	for _, key := range c.remoteKeys() {
		if key.Namespace == ns {
			c.queue.Add(key)
		}
	}
	var sis mcsv1beta1.ServiceImportList
	if err := c.Cache.List(context.Background(), &sis, client.InNamespace(ns)); err != nil {
		c.Log.Error(err, "Cannot list the ServiceImports of a namespace", "namespace", ns)
		return
	}
	for i := range sis.Items {
		c.queue.Add(client.ObjectKeyFromObject(&sis.Items[i]))
	}
}
