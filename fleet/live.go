package fleet

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/tools/cache"
)

// syncTimeout bounds the wait for a new watch's first list.
const syncTimeout = 30 * time.Second

// restartUnsynced is how long a watch may go without its first list before Watch replaces it.
const restartUnsynced = 2 * time.Second

// Selector is the label selector of every object meshcd manages; Live watches only those.
const Selector = "app.kubernetes.io/managed-by=meshcd"

// FieldManager is the server-side apply field manager meshcd writes as.
const FieldManager = "meshcd"

// EventType says what happened to a watched object.
type EventType string

const (
	Added   EventType = "added"
	Updated EventType = "updated"
	Deleted EventType = "deleted"
)

// Event is one change to a managed object, as the watch saw it.
type Event struct {
	Type   EventType
	Object *unstructured.Unstructured
	// Seen is when the watch delivered it, for detection latency.
	Seen time.Time
}

// Live is a watch cache of the objects meshcd manages in one cluster: one informer per kind,
// filtered by meshcd's label, started the first time a kind is needed. Reading from it costs
// no request, which is what makes an unchanged sync free and drift visible within a second.
type Live struct {
	cluster string
	dyn     dynamic.Interface
	mapper  meta.ResettableRESTMapper

	mu       sync.Mutex
	kinds    map[schema.GroupVersionKind]*watch
	handlers []func(Event)
	stopped  bool
}

type watch struct {
	started  time.Time
	mapping  *meta.RESTMapping
	informer cache.SharedIndexInformer
	stop     chan struct{}
}

func newLive(cluster string, dyn dynamic.Interface, mapper meta.ResettableRESTMapper) *Live {
	return &Live{cluster: cluster, dyn: dyn, mapper: mapper, kinds: map[schema.GroupVersionKind]*watch{}}
}

// Subscribe calls fn for every change to a managed object of every kind watched, from the
// informers' goroutines. It also sees the initial list of each kind as Added events.
func (l *Live) Subscribe(fn func(Event)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.handlers = append(l.handlers, fn)
}

// Mapping returns how the kind is served, refreshing discovery once when the kind is unknown
// (a CRD meshcd just created).
func (l *Live) Mapping(gvk schema.GroupVersionKind) (*meta.RESTMapping, error) {
	m, err := l.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if meta.IsNoMatchError(err) {
		l.mapper.Reset()
		m, err = l.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	}
	if err != nil {
		return nil, fmt.Errorf("cluster %s: kind %s: %w", l.cluster, gvk, err)
	}
	return m, nil
}

// Watch makes sure the kind is watched and its cache filled, and returns its mapping.
func (l *Live) Watch(ctx context.Context, gvk schema.GroupVersionKind) (*meta.RESTMapping, error) {
	l.mu.Lock()
	w, ok := l.kinds[gvk]
	if ok && !w.informer.HasSynced() && time.Since(w.started) > restartUnsynced {
		// Its first list failed (the server was down) and the reflector is backing off for up
		// to half a minute; a fresh watch lists at once.
		close(w.stop)
		delete(l.kinds, gvk)
		ok = false
	}
	l.mu.Unlock()
	if !ok {
		m, err := l.Mapping(gvk)
		if err != nil {
			return nil, err
		}
		l.mu.Lock()
		if l.stopped {
			l.mu.Unlock()
			return nil, fmt.Errorf("cluster %s: watch cache stopped", l.cluster)
		}
		if w, ok = l.kinds[gvk]; !ok {
			w = l.start(m)
			l.kinds[gvk] = w
		}
		l.mu.Unlock()
	}
	if !w.informer.HasSynced() {
		// A list that keeps failing (forbidden, or the server gone) would be retried for ever.
		ctx, cancel := context.WithTimeout(ctx, syncTimeout)
		defer cancel()
		if !cache.WaitForCacheSync(ctx.Done(), w.informer.HasSynced) {
			if err := ctx.Err(); err != nil {
				return nil, fmt.Errorf("cluster %s: watching %s: %w", l.cluster, gvk, err)
			}
			return nil, fmt.Errorf("cluster %s: watching %s: cache did not fill", l.cluster, gvk)
		}
	}
	return w.mapping, nil
}

func (l *Live) start(m *meta.RESTMapping) *watch {
	inf := dynamicinformer.NewFilteredDynamicInformer(l.dyn, m.Resource, metav1.NamespaceAll, 0, cache.Indexers{},
		func(o *metav1.ListOptions) { o.LabelSelector = Selector })
	w := &watch{started: time.Now(), mapping: m, informer: inf.Informer(), stop: make(chan struct{})}
	_ = w.informer.SetTransform(slim)
	notify := func(t EventType, obj any) {
		u, ok := obj.(*unstructured.Unstructured)
		if !ok {
			if d, isTomb := obj.(cache.DeletedFinalStateUnknown); isTomb {
				u, ok = d.Obj.(*unstructured.Unstructured)
			}
			if !ok {
				return
			}
		}
		ev := Event{Type: t, Object: u, Seen: time.Now()}
		l.mu.Lock()
		hs := l.handlers
		l.mu.Unlock()
		for _, h := range hs {
			h(ev)
		}
	}
	_, _ = w.informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { notify(Added, o) },
		UpdateFunc: func(_, o any) { notify(Updated, o) },
		DeleteFunc: func(o any) { notify(Deleted, o) },
	})
	go w.informer.Run(w.stop)
	return w
}

// slim keeps the cache small: of the managed fields it keeps meshcd's own apply entry (what
// ownership drift is computed from) and, without its field set, the most recent other
// manager's entry (who changed the object last, and when); it drops kubectl's last-applied
// annotation.
func slim(obj any) (any, error) {
	u, ok := obj.(*unstructured.Unstructured)
	if !ok {
		return obj, nil
	}
	var keep []metav1.ManagedFieldsEntry
	var last *metav1.ManagedFieldsEntry
	for _, f := range u.GetManagedFields() {
		if f.Manager == FieldManager && f.Operation == metav1.ManagedFieldsOperationApply {
			keep = append(keep, f)
			continue
		}
		if f.Time != nil && (last == nil || last.Time == nil || !f.Time.Before(last.Time)) {
			f.FieldsV1 = nil
			last = &f
		}
	}
	if last != nil {
		keep = append(keep, *last)
	}
	u.SetManagedFields(keep)
	if ann := u.GetAnnotations(); ann != nil {
		if _, ok := ann["kubectl.kubernetes.io/last-applied-configuration"]; ok {
			delete(ann, "kubectl.kubernetes.io/last-applied-configuration")
			u.SetAnnotations(ann)
		}
	}
	return u, nil
}

// Get returns the cached live object, if the kind is watched and the object exists. The
// returned object is shared: callers must not modify it.
func (l *Live) Get(gvk schema.GroupVersionKind, namespace, name string) (*unstructured.Unstructured, bool) {
	l.mu.Lock()
	w, ok := l.kinds[gvk]
	l.mu.Unlock()
	if !ok {
		return nil, false
	}
	key := name
	if w.mapping.Scope.Name() == meta.RESTScopeNameNamespace {
		key = namespace + "/" + name
	}
	obj, exists, err := w.informer.GetStore().GetByKey(key)
	if err != nil || !exists {
		return nil, false
	}
	u, ok := obj.(*unstructured.Unstructured)
	return u, ok
}

// Objects returns every cached object of the kinds watched.
func (l *Live) Objects() []*unstructured.Unstructured {
	l.mu.Lock()
	ws := make([]*watch, 0, len(l.kinds))
	for _, w := range l.kinds {
		ws = append(ws, w)
	}
	l.mu.Unlock()
	var out []*unstructured.Unstructured
	for _, w := range ws {
		for _, o := range w.informer.GetStore().List() {
			if u, ok := o.(*unstructured.Unstructured); ok {
				out = append(out, u)
			}
		}
	}
	return out
}

// OlderThan reports whether resource version a is known to come before b. Resource versions
// are opaque to clients, but every apiserver backed by etcd serves them as increasing
// integers; anything else compares as not older.
func OlderThan(a, b string) bool {
	x, errA := strconv.ParseUint(a, 10, 64)
	y, errB := strconv.ParseUint(b, 10, 64)
	return errA == nil && errB == nil && x < y
}

// WaitSeen waits until the cache shows the object at resourceVersion rv, so a change meshcd
// just made is not mistaken, a moment later, for someone else's. It gives up quietly after
// timeout (another write may already have moved the object on).
func (l *Live) WaitSeen(ctx context.Context, gvk schema.GroupVersionKind, namespace, name, rv string, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for {
		if o, ok := l.Get(gvk, namespace, name); ok && o.GetResourceVersion() == rv {
			return
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Stop ends every watch.
func (l *Live) Stop() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.stopped {
		return
	}
	l.stopped = true
	for _, w := range l.kinds {
		close(w.stop)
	}
}
