package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berth-dev/berth/registry/storage/driver/inmemory"
	digest "github.com/opencontainers/go-digest"
)

func newStore(t *testing.T) *Store {
	t.Helper()
	s, err := New(inmemory.New())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func putBlob(t *testing.T, s *Store, repo, content string) digest.Digest {
	t.Helper()
	d := digest.FromString(content)
	if _, err := s.PutBlob(context.Background(), repo, d, strings.NewReader(content)); err != nil {
		t.Fatalf("PutBlob %s: %v", repo, err)
	}
	return d
}

// image pushes a config and one layer and a manifest naming them.
func image(t *testing.T, s *Store, repo, ref, seed string) (manifest, config, layer digest.Digest) {
	t.Helper()
	cfg := `{"seed":"` + seed + `"}`
	lay := "layer-" + seed
	config = putBlob(t, s, repo, cfg)
	layer = putBlob(t, s, repo, lay)
	body := fmt.Sprintf(`{"schemaVersion":2,"mediaType":"%s","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":%d},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"%s","size":%d}]}`,
		MediaTypeOCIManifest, config, len(cfg), layer, len(lay))
	res, err := s.PutManifest(context.Background(), repo, ref, MediaTypeOCIManifest, []byte(body), nil)
	if err != nil {
		t.Fatalf("PutManifest: %v", err)
	}
	return res.Digest, config, layer
}

func index(t *testing.T, s *Store, repo, ref string, children ...digest.Digest) digest.Digest {
	t.Helper()
	var parts []string
	for _, c := range children {
		b, err := s.GetManifest(context.Background(), repo, c.String())
		if err != nil {
			t.Fatal(err)
		}
		parts = append(parts, fmt.Sprintf(`{"mediaType":"%s","digest":"%s","size":%d}`, MediaTypeOCIManifest, c, len(b.Body)))
	}
	body := fmt.Sprintf(`{"schemaVersion":2,"mediaType":"%s","manifests":[%s]}`, MediaTypeOCIIndex, strings.Join(parts, ","))
	res, err := s.PutManifest(context.Background(), repo, ref, MediaTypeOCIIndex, []byte(body), nil)
	if err != nil {
		t.Fatalf("PutManifest index: %v", err)
	}
	return res.Digest
}

func TestUploadRules(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name    string
		chunks  []string
		starts  []int64
		final   string
		want    string // content whose digest is claimed
		wantErr error
	}{
		{name: "one chunk", chunks: []string{"hello"}, starts: []int64{-1}, want: "hello"},
		{name: "ordered chunks", chunks: []string{"he", "llo"}, starts: []int64{0, 2}, want: "hello"},
		{name: "final chunk in put", chunks: []string{"he"}, starts: []int64{0}, final: "llo", want: "hello"},
		{name: "out of order", chunks: []string{"he", "llo"}, starts: []int64{0, 3}, want: "hello", wantErr: ErrRangeInvalid},
		{name: "digest mismatch", chunks: []string{"hello"}, starts: []int64{-1}, want: "other", wantErr: ErrDigestInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t)
			id, err := s.StartUpload(ctx, "r")
			if err != nil {
				t.Fatal(err)
			}
			var gotErr error
			for i, c := range tc.chunks {
				if _, err := s.AppendUpload(ctx, "r", id, tc.starts[i], strings.NewReader(c)); err != nil {
					gotErr = err
					break
				}
			}
			if gotErr == nil {
				var final io.Reader
				if tc.final != "" {
					final = strings.NewReader(tc.final)
				}
				_, gotErr = s.CommitUpload(ctx, "r", id, digest.FromString(tc.want), -1, final)
			}
			if tc.wantErr != nil {
				if !errors.Is(gotErr, tc.wantErr) {
					t.Fatalf("err = %v, want %v", gotErr, tc.wantErr)
				}
				return
			}
			if gotErr != nil {
				t.Fatal(gotErr)
			}
			if _, err := s.StatBlob(ctx, "r", digest.FromString(tc.want)); err != nil {
				t.Fatalf("blob not committed: %v", err)
			}
			if _, err := s.UploadSize(ctx, "r", id); !errors.Is(err, ErrBlobUploadUnknown) {
				t.Fatalf("upload still there: %v", err)
			}
		})
	}
}

func TestConcurrentUploadsOfOneBlob(t *testing.T) {
	ctx := context.Background()
	s, err := OpenFilesystem(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	content := strings.Repeat("same bytes ", 100000)
	d := digest.FromString(content)
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			repo := fmt.Sprintf("r%d", i%4)
			if _, err := s.PutBlob(ctx, repo, d, strings.NewReader(content)); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for i := range 4 {
		rc, info, err := s.OpenBlob(ctx, fmt.Sprintf("r%d", i), d, 0)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := digest.FromReader(rc)
		rc.Close()
		if got != d || info.Size != int64(len(content)) {
			t.Fatalf("r%d: got %s (%d bytes)", i, got, info.Size)
		}
	}
}

func TestGC(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	keptM, keptC, keptL := image(t, s, "a/app", "v1", "kept")
	goneM, goneC, goneL := image(t, s, "a/app", "old", "gone")
	childM, _, childL := image(t, s, "a/multi", "tmp", "child")
	idx := index(t, s, "a/multi", "latest", childM)
	if err := s.DeleteManifest(ctx, "a/app", "old"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteManifest(ctx, "a/multi", "tmp"); err != nil { // the child keeps only its index
		t.Fatal(err)
	}
	stray := putBlob(t, s, "a/app", "never referenced")

	// Dry run changes nothing.
	rep, err := s.GC(ctx, GCOptions{DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if rep.ManifestsDeleted != 1 || rep.BlobsDeleted != 4 {
		t.Fatalf("dry run report %+v, want 1 manifest, 4 blobs", rep)
	}
	if _, err := s.GetManifest(ctx, "a/app", goneM.String()); err != nil {
		t.Fatalf("dry run removed a manifest: %v", err)
	}

	// A grace period protects everything just written.
	rep, err = s.GC(ctx, GCOptions{Grace: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if rep.BlobsDeleted != 0 || rep.ManifestsDeleted != 0 {
		t.Fatalf("grace not honoured: %+v", rep)
	}

	rep, err = s.GC(ctx, GCOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Log(rep)
	for _, d := range []digest.Digest{keptM, keptC, keptL} {
		if _, err := s.StatBlob(ctx, "a/app", d); err != nil {
			t.Errorf("tagged content %s lost: %v", d, err)
		}
	}
	for _, d := range []digest.Digest{idx, childM, childL} {
		if _, err := s.StatBlob(ctx, "a/multi", d); err != nil {
			t.Errorf("index content %s lost: %v", d, err)
		}
	}
	for _, d := range []digest.Digest{goneM, goneC, goneL, stray} {
		if _, err := s.d.Stat(ctx, blobDataPath(d)); err == nil {
			t.Errorf("unreferenced %s survived", d)
		}
	}
	if rep.BytesFreed == 0 || !strings.Contains(rep.String(), "gc: freed") {
		t.Errorf("report %q", rep)
	}
}

func TestFileLockerExcludes(t *testing.T) {
	dir := t.TempDir()
	l, err := NewFileLocker(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	r1, _ := l.RLock(ctx)
	r2, _ := l.RLock(ctx) // shared locks coexist
	got := make(chan struct{})
	go func() {
		u, _ := l.Lock(ctx)
		close(got)
		u()
	}()
	r1()
	r2()
	<-got
	if _, err := os.Stat(filepath.Join(dir, ".gc.lock")); err != nil {
		t.Fatal(err)
	}
}

// hookLocker runs hook just before the collection's second exclusive lock:
// between the unlocked mark phase and the sweep.
type hookLocker struct {
	Locker
	locks int
	hook  func()
}

func (h *hookLocker) Lock(ctx context.Context) (func(), error) {
	h.locks++
	if h.locks == 2 && h.hook != nil {
		h.hook()
	}
	return h.Locker.Lock(ctx)
}

// TestGCKeepsWhatIsLinkedDuringMark: a manifest put while the collection
// marks, naming blobs that were garbage when marking began, keeps them.
func TestGCKeepsWhatIsLinkedDuringMark(t *testing.T) {
	ctx := context.Background()
	hl := &hookLocker{Locker: &memLocker{}}
	s, err := New(inmemory.New(), WithLocker(hl))
	if err != nil {
		t.Fatal(err)
	}
	m, cfg, layer := image(t, s, "a/app", "old", "seed")
	body, _ := s.GetManifest(ctx, "a/app", m.String())
	if err := s.DeleteManifest(ctx, "a/app", m.String()); err != nil {
		t.Fatal(err)
	}
	hl.hook = func() {
		// Re-push the same image under a new tag while gc is between phases.
		if _, err := s.PutManifest(ctx, "a/app", "again", MediaTypeOCIManifest, body.Body, nil); err != nil {
			t.Errorf("put during gc: %v", err)
		}
	}
	rep, err := s.GC(ctx, GCOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []digest.Digest{m, cfg, layer} {
		if _, err := s.StatBlob(ctx, "a/app", d); err != nil {
			t.Errorf("%s lost although tagged during gc (%s): %v", d, rep, err)
		}
	}
	// Without the put, the next collection frees it all.
	hl.hook = nil
	if err := s.DeleteManifest(ctx, "a/app", "again"); err != nil {
		t.Fatal(err)
	}
	hl.locks = 0
	rep, err = s.GC(ctx, GCOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.BlobsDeleted != 3 {
		t.Fatalf("second gc: %s, want 3 blobs", rep)
	}
}

func TestFileLockerNotes(t *testing.T) {
	ctx := context.Background()
	l, err := NewFileLocker(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	d := digest.FromString("x")
	l.Note(ctx, Note{Kind: NoteBlob, Repo: "a/b", Digest: d}) // not recording: dropped
	if err := l.BeginCollection(ctx); err != nil {
		t.Fatal(err)
	}
	l.Note(ctx, Note{Kind: NoteManifest, Repo: "a/b", Digest: d})
	notes, err := l.EndCollection(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(notes) != 1 || notes[0] != (Note{Kind: NoteManifest, Repo: "a/b", Digest: d}) {
		t.Fatalf("notes = %+v", notes)
	}
	if notes, _ := l.EndCollection(ctx); len(notes) != 0 {
		t.Fatalf("notes after end = %+v", notes)
	}
}

// TestUploadSurvivesRestart: an upload begun by one process is finished by
// the next (the running hash is lost, so commit rehashes from disk).
func TestUploadSurvivesRestart(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	s1, err := OpenFilesystem(root)
	if err != nil {
		t.Fatal(err)
	}
	id, err := s1.StartUpload(ctx, "r")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s1.AppendUpload(ctx, "r", id, 0, strings.NewReader("hello ")); err != nil {
		t.Fatal(err)
	}
	s2, err := OpenFilesystem(root) // the restarted registry
	if err != nil {
		t.Fatal(err)
	}
	if n, err := s2.UploadSize(ctx, "r", id); err != nil || n != 6 {
		t.Fatalf("UploadSize after restart = %d, %v", n, err)
	}
	if _, err := s2.CommitUpload(ctx, "r", id, digest.FromString("hello world"), 6, strings.NewReader("world")); err != nil {
		t.Fatal(err)
	}
	if _, err := s2.StatBlob(ctx, "r", digest.FromString("hello world")); err != nil {
		t.Fatal(err)
	}
}
