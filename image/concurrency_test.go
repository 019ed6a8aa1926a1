package image

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"
)

// TestConcurrentImportsAndRemovals races imports of one layer under many
// names against removals and a check; the store must end consistent.
func TestConcurrentImportsAndRemovals(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	raw := busyboxTar(t)
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < 6; i++ {
				ref := fmt.Sprintf("w%d:%d", w, i)
				if _, err := e.s.Import(ctx, bytes.NewReader(raw), ref, []string{fmt.Sprintf("ENV W=%d", w)}, ""); err != nil {
					errs <- fmt.Errorf("import %s: %w", ref, err)
					return
				}
				if i%2 == 0 {
					if _, err := e.s.Delete(ctx, ref, false, false); err != nil {
						errs <- fmt.Errorf("delete %s: %w", ref, err)
						return
					}
				}
			}
		}(w)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < 3; i++ {
			if _, err := e.s.Check(ctx, CheckOptions{Fast: true}); err != nil {
				errs <- err
			}
		}
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for w := 0; w < 4; w++ {
		for i := 1; i < 6; i += 2 {
			if _, err := e.s.Get(ctx, fmt.Sprintf("w%d:%d", w, i)); err != nil {
				t.Errorf("lost w%d:%d: %v", w, i, err)
			}
		}
	}
	e.check(t)
}
