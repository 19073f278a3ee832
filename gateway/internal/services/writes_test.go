package services

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	mcsv1beta1 "sigs.k8s.io/mcs-api/pkg/apis/v1beta1"
)

// TestWritesResolve covers the record of own writes, without an API
// server: what a read believes while the cache lags a write, and when
// the informer's events end each remembered write.
func TestWritesResolve(t *testing.T) {
	key := serviceKey{Namespace: "ns", Name: "api"}
	si := func(rv string, uid types.UID) *mcsv1beta1.ServiceImport {
		return &mcsv1beta1.ServiceImport{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "api", ResourceVersion: rv, UID: uid}}
	}
	ref := refOf(si("", ""))
	var w writes
	// rvOf is the resourceVersion a read believes, given the cache's copy
	// (nil: not in the cache); "none" if it believes there is no object.
	rvOf := func(cached client.Object) string {
		t.Helper()
		got, ok := w.resolve(key, ref, cached)
		if !ok {
			return "none"
		}
		return got.GetResourceVersion()
	}

	// Created: the cache has nothing yet, the read has the created object.
	w.wrote(key, si("1", "u1"))
	if got := rvOf(nil); got != "1" {
		t.Errorf("created, cache empty: read %s, want 1", got)
	}
	// Its status updated: the cache shows the creation, the read the update.
	w.wrote(key, si("2", "u1"))
	w.observe(key, si("1", "u1"), false)
	if got := rvOf(si("1", "u1")); got != "2" {
		t.Errorf("updated, cache at the creation: read %s, want 2", got)
	}
	// The informer shows the update: the write is forgotten.
	w.observe(key, si("2", "u1"), false)
	if n := w.size(); n != 0 {
		t.Errorf("%d writes remembered after the informer showed the last", n)
	}

	// Deleted: the cache still has it, the read does not.
	w.deleted(key, si("2", "u1"))
	if got := rvOf(si("2", "u1")); got != "none" {
		t.Errorf("deleted, cache not yet: read %s, want none", got)
	}
	// Created again by someone else (another UID): the cache is believed.
	if got := rvOf(si("7", "u2")); got != "7" || w.size() != 0 {
		t.Errorf("deleted, then another object in the cache: read %s with %d remembered, want 7 and none", got, w.size())
	}
	// A deletion event of the object we wrote ends that write.
	w.wrote(key, si("8", "u3"))
	w.observe(key, si("8", "u3"), true)
	if n := w.size(); n != 0 {
		t.Errorf("%d writes remembered after the object's deletion", n)
	}
	// A write the informer never shows is trusted only for writeMaxAge.
	w.put(key, ref, written{obj: si("9", "u4"), uid: "u4", rv: "9", at: time.Now().Add(-writeMaxAge - time.Second)})
	if got := rvOf(nil); got != "none" {
		t.Errorf("an expired write: read %s, want the cache's none", got)
	}
}

// TestReadSeesOwnCreateBeforeTheCache: read finds an object the
// controller wrote and the cache does not have (here it does not exist
// at all, so the cache can never catch up), and does not find one it
// deleted that the cache still has.
func TestReadSeesOwnCreateBeforeTheCache(t *testing.T) {
	h := start(t)
	key := serviceKey{Namespace: h.ns, Name: "ghost"}
	c := h.ctrl
	ctx := context.Background()
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: h.ns, Name: "ghost", ResourceVersion: "1", UID: "u1"}}
	c.writes.wrote(key, svc)
	got, err := read[corev1.Service](ctx, c, key, key)
	if err != nil || got == nil || got.UID != "u1" {
		t.Fatalf("read after a create the cache has not seen: %v, %v", got, err)
	}

	real := newService(h.ns, "real", tcp("http", 80, 80))
	h.create(real)
	realKey := serviceKey{Namespace: h.ns, Name: "real"}
	h.eventually("the cache has the Service", func() error {
		_, err := read[corev1.Service](ctx, c, realKey, realKey)
		return err
	})
	c.writes.deleted(realKey, real)
	if got, err := read[corev1.Service](ctx, c, realKey, realKey); err != nil || got != nil {
		t.Errorf("read after a delete the cache has not seen: %v, %v; want none", got, err)
	}
}
