package drift

import (
	"context"
	"fmt"
	"sync"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// AskStored gives a detector that did not see meshcd's applies (the one-shot CLI) what the
// apiserver would store for each tracked object that exists: a server-side dry-run apply,
// which writes nothing. Drift is then measured as the daemon measures it, against the
// apiserver's own normalisation, defaulting and admission. An object whose dry run fails
// keeps the value rules; the errors name it.
func (d *Detector) AskStored(ctx context.Context, objs []*unstructured.Unstructured) error {
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	sem := make(chan struct{}, 8)
	for _, o := range objs {
		if _, found := d.cluster.Live.Get(o.GroupVersionKind(), o.GetNamespace(), o.GetName()); !found {
			continue
		}
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			out, err := d.forceApply(ctx, o, []string{metav1.DryRunAll}, "dry-run apply")
			if err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
				return
			}
			d.Applied(out)
		})
	}
	wg.Wait()
	if len(errs) > 0 {
		return fmt.Errorf("%d dry-run applies failed (compared by value instead): %w", len(errs), errs[0])
	}
	return nil
}
