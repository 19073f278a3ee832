package services

import (
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	mcsv1beta1 "sigs.k8s.io/mcs-api/pkg/apis/v1beta1"
)

// Read your own writes.
//
// The controller reads from informer caches, which show its own writes a
// little later than the API server answered them: a reconcile that starts
// in between would find an object it just created missing and create it
// again, or update from a copy its own last update made stale. Like the
// expectations of Kubernetes' EndpointSlice controller, writes remembers
// each object as the API server returned it, by service, until the
// informer shows that write; reads consult it before the cache. No
// polling: the informer's event of the write is what ends it.

// objRef names one object the controller writes.
type objRef struct {
	kind string
	types.NamespacedName
}

// refOf returns obj's reference; the kind is its Go type's.
func refOf(obj client.Object) objRef {
	return objRef{kind: kindOf(obj), NamespacedName: client.ObjectKeyFromObject(obj)}
}

func kindOf(obj client.Object) string {
	switch obj.(type) {
	case *corev1.Service:
		return "Service"
	case *discoveryv1.EndpointSlice:
		return "EndpointSlice"
	case *mcsv1beta1.ServiceImport:
		return "ServiceImport"
	case *mcsv1beta1.ServiceExport:
		return "ServiceExport"
	}
	return ""
}

// written is one remembered write.
type written struct {
	obj client.Object // as the API server returned it; nil for a deletion
	uid types.UID     // of obj, or of the object deleted
	rv  string        // obj's resourceVersion
	at  time.Time
}

// writeMaxAge bounds how long a write is remembered if the informer never
// shows it (a relist that skipped its version): the cache is then trusted.
const writeMaxAge = 30 * time.Second

// writes remembers the controller's own writes until its informers show
// them. Safe for concurrent use; entries are grouped by service, and the
// work queue gives one service to one worker at a time.
type writes struct {
	mu    sync.Mutex
	bySvc map[serviceKey]map[objRef]written
}

// wrote remembers obj, created or updated, as the API server returned it.
func (w *writes) wrote(key serviceKey, obj client.Object) {
	w.put(key, refOf(obj), written{
		obj: obj.DeepCopyObject().(client.Object), uid: obj.GetUID(), rv: obj.GetResourceVersion(), at: time.Now(),
	})
}

// deleted remembers that obj was deleted.
func (w *writes) deleted(key serviceKey, obj client.Object) {
	w.put(key, refOf(obj), written{uid: obj.GetUID(), at: time.Now()})
}

func (w *writes) put(key serviceKey, ref objRef, wr written) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.bySvc == nil {
		w.bySvc = map[serviceKey]map[objRef]written{}
	}
	if w.bySvc[key] == nil {
		w.bySvc[key] = map[objRef]written{}
	}
	w.bySvc[key][ref] = wr
}

func (w *writes) forget(key serviceKey, ref objRef) {
	delete(w.bySvc[key], ref)
	if len(w.bySvc[key]) == 0 {
		delete(w.bySvc, key)
	}
}

// observe takes an informer event of obj: the write it shows is no longer
// needed. An add or update shows our write when it carries its
// resourceVersion; a deletion shows our deletion, or ends a write of the
// same object (same UID).
func (w *writes) observe(key serviceKey, obj client.Object, deleted bool) {
	ref := refOf(obj)
	w.mu.Lock()
	defer w.mu.Unlock()
	wr, ok := w.bySvc[key][ref]
	switch {
	case !ok:
	case deleted && wr.uid == obj.GetUID():
		w.forget(key, ref)
	case !deleted && wr.obj != nil && wr.rv == obj.GetResourceVersion():
		w.forget(key, ref)
	}
}

// resolve returns what to believe of the object ref, given what the cache
// holds of it (nil: not found): the cache, unless a remembered write is
// newer. The second result is false when the object does not exist.
func (w *writes) resolve(key serviceKey, ref objRef, cached client.Object) (client.Object, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	wr, ok := w.bySvc[key][ref]
	if !ok {
		return cached, cached != nil
	}
	if w.shown(wr, cached) || time.Since(wr.at) > writeMaxAge {
		w.forget(key, ref)
		return cached, cached != nil
	}
	if wr.obj == nil {
		return nil, false
	}
	return wr.obj.DeepCopyObject().(client.Object), true
}

// shown reports whether the cache already shows the write.
func (w *writes) shown(wr written, cached client.Object) bool {
	if wr.obj == nil { // a deletion: gone, or created again by someone
		return cached == nil || cached.GetUID() != wr.uid
	}
	return cached != nil && cached.GetResourceVersion() == wr.rv
}

// pending returns the remembered writes of kind for key, by name, for
// merging into a cache list.
func (w *writes) pending(key serviceKey, kind string) map[string]written {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out map[string]written
	for ref, wr := range w.bySvc[key] {
		if ref.kind != kind {
			continue
		}
		if out == nil {
			out = map[string]written{}
		}
		out[ref.Name] = wr
	}
	return out
}

// size returns how many writes are remembered.
func (w *writes) size() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, m := range w.bySvc {
		n += len(m)
	}
	return n
}
