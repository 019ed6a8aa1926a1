package image

import (
	"bytes"
	"context"
	"fmt"
	"io"
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

// TestStalledImportBlocksNothing: an import whose client stops sending half
// way holds up neither rmi nor a repairing check, and still completes.
func TestStalledImportBlocksNothing(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	raw := busyboxTar(t)
	if _, err := e.s.Import(ctx, bytes.NewReader(raw), "other:1", []string{"ENV O=1"}, ""); err != nil {
		t.Fatal(err)
	}
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		_, err := e.s.Import(ctx, pr, "stalled:1", nil, "")
		done <- err
	}()
	half := len(raw) / 2
	if _, err := pw.Write(raw[:half]); err != nil {
		t.Fatal(err)
	}
	if _, err := e.s.Delete(ctx, "other:1", false, false); err != nil {
		t.Fatalf("rmi during a stalled import: %v", err)
	}
	res, err := e.s.Check(ctx, CheckOptions{Repair: true, Fast: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range res.Problems {
		t.Errorf("check during an import: %+v", p)
	}
	pw.Write(raw[half:])
	pw.Close()
	if err := <-done; err != nil {
		t.Fatalf("import: %v", err)
	}
	if _, err := e.s.Get(ctx, "stalled:1"); err != nil {
		t.Fatal(err)
	}
	e.check(t)
}
