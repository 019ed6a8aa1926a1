package image

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berth-dev/berth/errdefs"
	"github.com/opencontainers/go-digest"
)

func responses(rs []DeleteResponse) string {
	var out []string
	for _, r := range rs {
		if r.Untagged != "" {
			out = append(out, "U:"+r.Untagged)
		}
		if r.Deleted != "" {
			out = append(out, "D:"+r.Deleted)
		}
	}
	return strings.Join(out, " ")
}

func TestDeleteLikeDocker(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	raw := busyboxTar(t)
	img, err := e.s.Import(ctx, bytes.NewReader(raw), "a:1", nil, "")
	if err != nil {
		t.Fatal(err)
	}
	id := img.ID.String()
	short := img.ID.Encoded()[:12]
	users := fakeUsers{}
	e.s.SetUsers(users)
	steps := []struct {
		name   string
		setup  func()
		ref    string
		force  bool
		want   string // responses, or the error text
		errIs  func(error) bool
		remain bool // image still exists afterwards
	}{
		{"missing", nil, "nope", false, "No such image: nope", errdefs.IsNotFound, true},
		{"untag one of two", func() { e.s.Tag(ctx, "a:1", "b:2") }, "b:2", false, "U:b:2", nil, true},
		{"two repos by id", func() { e.s.Tag(ctx, "a:1", "c:3") }, short, false, "conflict: unable to delete " + short + " (must be forced) - image is referenced in multiple repositories", errdefs.IsConflict, true},
		{"used by a container, by name", func() { e.s.Delete(ctx, "c:3", false, false); users[id] = []string{"0123456789abcdef"} }, "a:1", false, `conflict: unable to remove repository reference "a:1" (must force) - container 0123456789ab is using its referenced image ` + short, errdefs.IsConflict, true},
		{"used by a container, by id", nil, id, false, "conflict: unable to delete " + short + " (must be forced) - image is being used by stopped container 0123456789ab", errdefs.IsConflict, true},
		{"forced past a stopped container", nil, id, true, "U:a:1 D:" + id + " D:" + img.ChainID, nil, false},
	}
	for _, s := range steps {
		if s.setup != nil {
			s.setup()
		}
		resp, err := e.s.Delete(ctx, s.ref, s.force, false)
		if s.errIs != nil {
			if !s.errIs(err) || err.Error() != s.want {
				t.Fatalf("%s: err %v, want %q", s.name, err, s.want)
			}
		} else if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		} else if got := responses(resp); got != s.want {
			t.Fatalf("%s: %q, want %q", s.name, got, s.want)
		}
		_, err = e.s.Get(ctx, id)
		if (err == nil) != s.remain {
			t.Fatalf("%s: image exists=%v, want %v", s.name, err == nil, s.remain)
		}
	}
	delete(users, id)
	e.check(t)
	// Nothing of the image is left on disk.
	blobs := 0
	e.cs.Walk(ctx, func(digest.Digest, int64, string) error { blobs++; return nil })
	if blobs != 0 {
		t.Errorf("%d blobs left", blobs)
	}
}

func TestDeleteKeepsSharedLayerAndPrunes(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	raw := busyboxTar(t)
	a, _ := e.s.Import(ctx, bytes.NewReader(raw), "a:1", nil, "")
	b, _ := e.s.Import(ctx, bytes.NewReader(raw), "", []string{"ENV X=1"}, "")
	resp, err := e.s.Delete(ctx, "a:1", false, false)
	if err != nil {
		t.Fatal(err)
	}
	if got := responses(resp); got != "U:a:1 D:"+a.ID.String() {
		t.Fatalf("shared layer deleted? %q", got)
	}
	if _, err := e.sn.Stat(ctx, b.ChainID); err != nil {
		t.Fatal("layer of the other image removed")
	}
	e.check(t)
	// prune removes the untagged one (dangling), prune -a the rest.
	e.s.Import(ctx, bytes.NewReader(raw), "tagged:1", []string{"ENV Y=2"}, "")
	rep, err := e.s.Prune(ctx, PruneOptions{DanglingOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := responses(rep.ImagesDeleted); got != "D:"+b.ID.String() {
		t.Fatalf("prune removed %q", got)
	}
	if rep.SpaceReclaimed != 0 {
		t.Errorf("reclaimed %d while the layer is still used", rep.SpaceReclaimed)
	}
	rep, err = e.s.Prune(ctx, PruneOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.SpaceReclaimed == 0 || !strings.Contains(responses(rep.ImagesDeleted), "U:tagged:1") {
		t.Fatalf("prune -a: %+v", rep)
	}
	if imgs, _ := e.s.List(ctx); len(imgs) != 0 {
		t.Fatalf("%d images left", len(imgs))
	}
	e.check(t)
}

func TestSummariesFiltersAndHistory(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	raw := busyboxTar(t)
	a, _ := e.s.Import(ctx, bytes.NewReader(raw), "busybox:1", []string{"LABEL team=a"}, "one")
	b, _ := e.s.Import(ctx, bytes.NewReader(raw), "other/app:2", []string{"LABEL team=b"}, "two")
	c, _ := e.s.Import(ctx, bytes.NewReader(raw), "", nil, "three")
	cases := []struct {
		filters map[string][]string
		want    []digest.Digest
		err     bool
	}{
		{nil, []digest.Digest{c.ID, b.ID, a.ID}, false},
		{map[string][]string{"dangling": {"true"}}, []digest.Digest{c.ID}, false},
		{map[string][]string{"dangling": {"false"}}, []digest.Digest{b.ID, a.ID}, false},
		{map[string][]string{"label": {"team=a"}}, []digest.Digest{a.ID}, false},
		{map[string][]string{"label": {"team"}}, []digest.Digest{b.ID, a.ID}, false},
		{map[string][]string{"reference": {"busybox"}}, []digest.Digest{a.ID}, false},
		{map[string][]string{"reference": {"other/*:2"}}, []digest.Digest{b.ID}, false},
		{map[string][]string{"before": {"other/app:2"}}, []digest.Digest{a.ID}, false},
		{map[string][]string{"since": {"busybox:1"}}, []digest.Digest{c.ID, b.ID}, false},
		{map[string][]string{"nope": {"1"}}, nil, true},
		{map[string][]string{"dangling": {"maybe"}}, nil, true},
		{map[string][]string{"before": {"missing"}}, nil, true},
	}
	for _, tc := range cases {
		got, err := e.s.Summaries(ctx, ListOptions{Filters: tc.filters})
		if tc.err {
			if err == nil {
				t.Errorf("%v: no error", tc.filters)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%v: %v", tc.filters, err)
		}
		var ids []digest.Digest
		for _, s := range got {
			ids = append(ids, digest.Digest(s.ID))
		}
		if len(ids) != len(tc.want) {
			t.Errorf("%v: got %v, want %v", tc.filters, ids, tc.want)
			continue
		}
		for i := range ids {
			if ids[i] != tc.want[i] {
				t.Errorf("%v: got %v, want %v", tc.filters, ids, tc.want)
			}
		}
	}
	h, err := e.s.History(ctx, "busybox:1")
	if err != nil || len(h) != 1 || h[0].ID != a.ID.String() || h[0].Comment != "one" || h[0].Size != a.Size || h[0].Tags[0] != "busybox:1" {
		t.Fatalf("history %+v %v", h, err)
	}
	insp, err := e.s.Inspect(ctx, "other/app:2")
	if err != nil || insp.ID != b.ID.String() || insp.Comment != "two" || len(insp.RootFS.Layers) != 1 || insp.GraphDriver == nil {
		t.Fatalf("inspect %+v %v", insp, err)
	}
	total, sums, err := e.s.DiskUsage(ctx)
	if err != nil || total != a.Size || len(sums) != 3 || sums[0].SharedSize != a.Size {
		t.Fatalf("df %d %+v %v", total, sums, err)
	}
}

func TestCheckFindsAndRepairsDamage(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	raw := busyboxTar(t)
	a, _ := e.s.Import(ctx, bytes.NewReader(raw), "a:1", nil, "")
	b, _ := e.s.Import(ctx, bytes.NewReader(raw), "b:1", []string{"ENV X=1"}, "")
	// Corrupt a's config, drop a file from the shared layer's snapshot,
	// and add a stray blob.
	p, _ := e.cs.Path(a.ID)
	os.Chmod(p, 0o644)
	os.WriteFile(p, []byte("{}"), 0o644)
	dir, _ := e.sn.UpperDir(ctx, b.ChainID)
	if img := filepath.Join(filepath.Dir(dir), "layer.erofs"); e.sn.LayerImages() {
		// A read-only image cannot lose one file; it can lose its tail.
		os.Truncate(img, 2048)
	} else {
		os.Remove(dir + "/etc/hostname")
	}
	stray, _ := e.cs.WriteBlob(ctx, []byte("stray"))
	_ = stray

	res, err := e.s.Check(ctx, CheckOptions{})
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]bool{}
	for _, p := range res.Problems {
		kinds[p.Kind+" "+p.Object] = true
	}
	for _, want := range []string{"blob " + a.ID.String(), "image " + a.ID.String(), "layer " + b.ChainID, "image " + b.ID.String()} {
		if !kinds[want] {
			t.Errorf("check missed %s; found %+v", want, res.Problems)
		}
	}
	if res.Repaired != 0 {
		t.Fatal("repaired without being asked")
	}
	res, err = e.s.Check(ctx, CheckOptions{Repair: true})
	if err != nil || res.Repaired == 0 {
		t.Fatalf("repair: %+v %v", res, err)
	}
	if _, err := e.s.Get(ctx, "a:1"); !errdefs.IsNotFound(err) {
		t.Errorf("broken image kept: %v", err)
	}
	// The stray blob is new, so only a startup check (or an old one) drops it.
	e.reopen(t)
	e.check(t)
	// After repair the layer can be imported again, whole.
	if _, err := e.s.Import(ctx, bytes.NewReader(raw), "a:1", nil, ""); err != nil {
		t.Fatal(err)
	}
	e.check(t)
}

func TestForcedRemovalKeepsContainerLayersUntilGC(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	img, err := e.s.Import(ctx, bytes.NewReader(busyboxTar(t)), "a:1", nil, "")
	if err != nil {
		t.Fatal(err)
	}
	e.s.SetUsers(fakeUsers{img.ID.String(): {"c1"}})
	if _, err := e.sn.Prepare(ctx, "c1", img.ChainID); err != nil {
		t.Fatal(err)
	}
	resp, err := e.s.Delete(ctx, "a:1", true, false)
	if err != nil {
		t.Fatal(err)
	}
	if got := responses(resp); got != "U:a:1 D:"+img.ID.String() {
		t.Fatalf("rmi -f: %q", got)
	}
	if _, err := e.sn.Stat(ctx, img.ChainID); err != nil {
		t.Fatal("layer under a container removed")
	}
	e.check(t)
	e.s.SetUsers(fakeUsers{})
	if err := e.sn.Remove(ctx, "c1"); err != nil {
		t.Fatal(err)
	}
	removed, err := e.s.GC(ctx)
	if err != nil || len(removed) != 1 || removed[0] != img.ChainID {
		t.Fatalf("gc removed %v, %v", removed, err)
	}
	blobs := 0
	e.cs.Walk(ctx, func(digest.Digest, int64, string) error { blobs++; return nil })
	if blobs != 0 {
		t.Errorf("%d blobs left", blobs)
	}
	e.check(t)
}

func TestDuplicateLayerBlobIsCollected(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	raw := busyboxTar(t)
	gz := compress(t, "gzip", raw)
	gzDigest, _, err := e.cs.Write(ctx, bytes.NewReader(gz), "")
	if err != nil {
		t.Fatal(err)
	}
	first, err := e.s.ApplyLayerBlob(ctx, "", ocispecDescriptor(gzDigest), "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.s.Create(ctx, dockerspecImage(), []Layer{first}, CreateOptions{Tags: []string{"gz:1"}}); err != nil {
		t.Fatal(err)
	}
	again, err := e.s.ApplyLayer(ctx, "", bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	if again.Blob.Digest != gzDigest {
		t.Fatalf("duplicate layer got blob %s", again.Blob.Digest)
	}
	if _, err := e.s.GC(ctx); err != nil {
		t.Fatal(err)
	}
	if e.cs.Exists(ctx, digest.FromBytes(raw)) {
		t.Error("the uncompressed copy of an existing layer lingers")
	}
	e.check(t)
}

func TestPushCacheBlobLivesWithItsLayer(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	raw := busyboxTar(t)
	img, err := e.s.Import(ctx, bytes.NewReader(raw), "a:1", nil, "")
	if err != nil {
		t.Fatal(err)
	}
	gz, _, err := e.cs.Write(ctx, bytes.NewReader(compress(t, "gzip", raw)), "")
	if err != nil {
		t.Fatal(err)
	}
	if err := e.s.SetCompressedBlob(ctx, img.Config.RootFS.DiffIDs[0], ocispecDescriptor(gz)); err != nil {
		t.Fatal(err)
	}
	e.reopen(t) // the startup check must keep it
	if !e.cs.Exists(ctx, gz) {
		t.Fatal("startup check removed the compressed copy of a used layer")
	}
	e.check(t)
	if _, err := e.s.Delete(ctx, "a:1", false, false); err != nil {
		t.Fatal(err)
	}
	if e.cs.Exists(ctx, gz) {
		t.Error("compressed copy outlived its layer")
	}
	e.check(t)
}

func TestStartupKeepsBrokenImagesForExplicitRepair(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	img, err := e.s.Import(ctx, bytes.NewReader(busyboxTar(t)), "a:1", nil, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := e.cs.Delete(ctx, img.ID); err != nil { // a lost config blob
		t.Fatal(err)
	}
	e.reopen(t)
	if _, err := e.sn.Stat(ctx, img.ChainID); err != nil {
		t.Fatal("start-up removed the layer of a broken image")
	}
	res, err := e.s.Check(ctx, CheckOptions{Fast: true})
	if err != nil || len(res.Problems) == 0 {
		t.Fatalf("broken image not reported: %+v %v", res, err)
	}
	if res, err = e.s.Check(ctx, CheckOptions{Repair: true}); err != nil || res.Repaired == 0 {
		t.Fatalf("repair: %+v %v", res, err)
	}
	e.check(t)
}
