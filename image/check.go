package image

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/metadata"
	"github.com/berth-dev/berth/snapshot"
	securejoin "github.com/cyphar/filepath-securejoin"
	"github.com/opencontainers/go-digest"
	bolt "go.etcd.io/bbolt"
	"golang.org/x/sys/unix"
)

// CheckOptions says how deep Check looks and whether it repairs.
type CheckOptions struct {
	// Repair removes what is broken or unreferenced.
	Repair bool
	// Fast skips re-hashing blobs and comparing snapshots with their layers.
	Fast bool

	// startup: nothing else runs, so every unreferenced object is garbage.
	startup bool
}

// Problem is one thing Check found.
type Problem struct {
	Kind   string `json:"Kind"`   // blob, layer, snapshot, image, reference
	Object string `json:"Object"` // its digest, chain ID, key or name
	Detail string `json:"Detail"`
}

// CheckResult is what `berth system check` reports.
type CheckResult struct {
	Checked  int       `json:"Checked"`
	Problems []Problem `json:"Problems"`
	Repaired int       `json:"Repaired"`
}

// unreferencedGrace keeps blobs younger than this from being called
// unreferenced while the daemon runs: a pull may be writing them.
const unreferencedGrace = 10 * time.Minute

// Check walks the store: blobs are re-hashed, layers checked against their
// snapshots and blobs, images against their config, manifest and layers,
// names against images. With Repair, broken images and layers are removed
// (an image whose layer or blob is broken goes with it) and so is whatever
// no image references.
func (s *Store) Check(ctx context.Context, opts CheckOptions) (*CheckResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	res := &CheckResult{Problems: []Problem{}}
	report := func(kind, obj, format string, args ...any) {
		res.Problems = append(res.Problems, Problem{Kind: kind, Object: obj, Detail: fmt.Sprintf(format, args...)})
	}

	// 1. Blobs: well named and (deep) intact.
	corrupt := map[digest.Digest]bool{}
	err := s.cs.Walk(ctx, func(d digest.Digest, _ int64, path string) error {
		res.Checked++
		if d == "" {
			report("blob", path, "file is not named by a digest")
			if opts.Repair && os.Remove(path) == nil {
				res.Repaired++
			}
			return nil
		}
		if opts.Fast {
			return nil
		}
		if err := s.cs.Verify(ctx, d); err != nil {
			report("blob", d.String(), "content does not match its digest")
			corrupt[d] = true
			if opts.Repair && s.cs.Delete(ctx, d) == nil {
				res.Repaired++
			}
		}
		return nil
	})
	if err != nil {
		return res, err
	}

	// 2. Layers: snapshot committed, parent present, blob present, contents.
	var layers []Layer
	s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(BucketLayers).ForEach(func(k, _ []byte) error {
			l, err := getLayer(tx, string(k))
			if err != nil {
				report("layer", string(k), "%v", err)
				layers = append(layers, Layer{ChainID: string(k), Parent: "\x00broken"})
				return nil
			}
			layers = append(layers, *l)
			return nil
		})
	})
	brokenLayers := map[string]bool{}
	for changed := true; changed; {
		changed = false
		for _, l := range layers {
			if brokenLayers[l.ChainID] {
				continue
			}
			why := s.checkLayer(ctx, l, brokenLayers, corrupt, opts.Fast)
			if why != "" {
				brokenLayers[l.ChainID] = true
				changed = true
				report("layer", l.ChainID, "%s", why)
			}
		}
	}
	res.Checked += len(layers)

	// 3. Images: config, manifest and every layer of the chain.
	var brokenImages []digest.Digest
	s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(metadata.BucketImages).ForEach(func(k, _ []byte) error {
			res.Checked++
			id := digest.Digest(k)
			why := ""
			r, err := getRecord(tx, id)
			switch {
			case err != nil || r == nil:
				why = "unreadable record"
			case corrupt[id] || !s.cs.Exists(ctx, id):
				why = "config blob missing or corrupt"
			case corrupt[r.Manifest] || !s.cs.Exists(ctx, r.Manifest):
				why = "manifest blob missing or corrupt"
			default:
				ls, err := chain(tx, r.ChainID)
				if err != nil {
					why = "layer chain incomplete: " + err.Error()
				}
				for _, l := range ls {
					if brokenLayers[l.ChainID] {
						why = "layer " + l.ChainID + " is broken"
					}
				}
			}
			if why != "" {
				report("image", id.String(), "%s", why)
				brokenImages = append(brokenImages, id)
			}
			return nil
		})
	})
	if opts.Repair {
		// At start-up only what a crash can leave is removed: broken
		// images (lost blobs, a damaged disk) stay for an explicit repair,
		// and so do the broken layers they use.
		if !opts.startup {
			for _, id := range brokenImages {
				err := s.db.Update(func(tx *bolt.Tx) error {
					refs := tx.Bucket(metadata.BucketReferences)
					for _, n := range namesOf(tx)[id] {
						refs.Delete([]byte(n))
					}
					return tx.Bucket(metadata.BucketImages).Delete([]byte(id))
				})
				if err == nil {
					res.Repaired++
				}
			}
		}
		var inUse map[string]bool
		s.db.View(func(tx *bolt.Tx) error {
			inUse, _ = s.references(tx)
			return nil
		})
		parents := map[string]string{}
		for _, l := range layers {
			parents[l.ChainID] = l.Parent
		}
		sortByDepth(layers, parents) // children before their parents
		for _, l := range layers {
			if !brokenLayers[l.ChainID] || (opts.startup && inUse[l.ChainID]) {
				continue
			}
			if s.removeLayer(ctx, l.ChainID) == nil {
				res.Repaired++
			}
		}
	}

	// 4. Names that point at no image.
	var danglingRefs []string
	s.db.View(func(tx *bolt.Tx) error {
		images := tx.Bucket(metadata.BucketImages)
		return tx.Bucket(metadata.BucketReferences).ForEach(func(k, v []byte) error {
			res.Checked++
			if images.Get(v) == nil {
				report("reference", familiar(string(k)), "names missing image %s", v)
				danglingRefs = append(danglingRefs, string(k))
			}
			return nil
		})
	})
	if opts.Repair && len(danglingRefs) > 0 {
		s.db.Update(func(tx *bolt.Tx) error {
			for _, k := range danglingRefs {
				if tx.Bucket(metadata.BucketReferences).Delete([]byte(k)) == nil {
					res.Repaired++
				}
			}
			return nil
		})
	}

	// 5. Unreferenced layers and snapshots.
	var usedLayers map[string]bool
	var usedBlobs map[digest.Digest]bool
	s.db.View(func(tx *bolt.Tx) error {
		usedLayers, usedBlobs = s.references(tx)
		return nil
	})
	var snaps []snapshot.Info
	s.sn.Walk(ctx, func(in snapshot.Info) error { snaps = append(snaps, in); return nil })
	// Layers a container's writable snapshot builds on are in use.
	parentOf := map[string]string{}
	for _, l := range layers {
		parentOf[l.ChainID] = l.Parent
	}
	for _, in := range snaps {
		if in.Kind == snapshot.KindActive && (!strings.HasPrefix(in.Key, "extract-") || s.isExtracting(in.Key)) {
			for c := in.Parent; c != "" && !usedLayers[c]; c = parentOf[c] {
				usedLayers[c] = true
			}
		}
	}
	// Top-most first, so removal never meets a child.
	sortByDepth(layers, parentOf)
	// Interrupted unpacks first: they are children of the layers below.
	for _, in := range reverseSnaps(snaps) {
		if in.Kind == snapshot.KindActive && strings.HasPrefix(in.Key, "extract-") && !s.isExtracting(in.Key) {
			report("snapshot", in.Key, "left over from an interrupted unpack")
			if opts.Repair && s.sn.Remove(ctx, in.Key) == nil {
				res.Repaired++
			}
		}
	}
	recorded := map[string]bool{}
	for _, l := range layers {
		if brokenLayers[l.ChainID] {
			continue
		}
		if usedLayers[l.ChainID] || (!opts.startup && s.held(l.ChainID)) {
			recorded[l.ChainID] = true
			continue
		}
		report("layer", l.ChainID, "no image uses it")
		if opts.Repair && s.removeLayer(ctx, l.ChainID) == nil {
			res.Repaired++
		} else {
			recorded[l.ChainID] = true
		}
	}
	for _, in := range reverseSnaps(snaps) {
		res.Checked++
		switch {
		case in.Kind == snapshot.KindActive && strings.HasPrefix(in.Key, "extract-"):
			continue // done above
		case in.Kind == snapshot.KindCommitted && !recorded[in.Key] && !brokenLayers[in.Key]:
			report("snapshot", in.Key, "committed snapshot that is no layer")
		default:
			continue
		}
		if opts.Repair && s.sn.Remove(ctx, in.Key) == nil {
			res.Repaired++
		}
	}

	// 6. Blobs nothing references.
	s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(BucketLayers).ForEach(func(k, _ []byte) error {
			if l, _ := getLayer(tx, string(k)); l != nil {
				for _, d := range layerBlobs(tx, l) {
					usedBlobs[d] = true
				}
			}
			return nil
		})
	})
	err = s.cs.Walk(ctx, func(d digest.Digest, _ int64, path string) error {
		if d == "" || usedBlobs[d] || corrupt[d] {
			return nil
		}
		if !opts.startup {
			if fi, err := os.Stat(path); err == nil && time.Since(fi.ModTime()) < unreferencedGrace {
				return nil
			}
		}
		if s.isPinned(d) {
			return nil // an operation in progress is about to use it
		}
		report("blob", d.String(), "no image or layer references it")
		if opts.Repair && s.deleteBlob(ctx, d) == nil {
			res.Repaired++
		}
		return nil
	})
	return res, err
}

func sortByDepth(layers []Layer, parentOf map[string]string) {
	depth := func(c string) int {
		n := 0
		for ; c != "" && n < 10000; c = parentOf[c] {
			n++
		}
		return n
	}
	d := map[string]int{}
	for _, l := range layers {
		d[l.ChainID] = depth(l.ChainID)
	}
	// Deepest first.
	for i := 1; i < len(layers); i++ {
		for j := i; j > 0 && d[layers[j].ChainID] > d[layers[j-1].ChainID]; j-- {
			layers[j], layers[j-1] = layers[j-1], layers[j]
		}
	}
}

// reverseSnaps orders snapshots children first (higher IDs are newer and
// only build on older ones).
func reverseSnaps(in []snapshot.Info) []snapshot.Info {
	out := append([]snapshot.Info{}, in...)
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j].ID > out[j-1].ID; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}

// removeLayer removes a layer's snapshot and record.
func (s *Store) removeLayer(ctx context.Context, chainID string) error {
	if err := s.sn.Remove(ctx, chainID); err != nil && !errdefs.IsNotFound(err) {
		return err
	}
	return s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(BucketLayers).Delete([]byte(chainID)) })
}

// checkLayer returns why a layer is broken, or "".
func (s *Store) checkLayer(ctx context.Context, l Layer, broken map[string]bool, corrupt map[digest.Digest]bool, fast bool) string {
	if l.Parent == "\x00broken" {
		return "unreadable record"
	}
	if l.Parent != "" && broken[l.Parent] {
		return "parent layer " + l.Parent + " is broken"
	}
	if l.ChainID != ChainID(l.Parent, l.DiffID) {
		return "chain ID does not match parent and diff ID"
	}
	in, err := s.sn.Stat(ctx, l.ChainID)
	if err != nil {
		return "snapshot missing"
	}
	if in.Kind != snapshot.KindCommitted {
		return "snapshot not committed"
	}
	if in.Parent != l.Parent {
		return "snapshot parent " + in.Parent + " differs from layer parent " + l.Parent
	}
	if l.Parent != "" {
		if _, err := s.sn.Stat(ctx, l.Parent); err != nil {
			return "parent snapshot missing"
		}
	}
	if corrupt[l.Blob.Digest] || !s.cs.Exists(ctx, l.Blob.Digest) {
		return "layer blob " + l.Blob.Digest.String() + " missing or corrupt"
	}
	if fast {
		return ""
	}
	dir, err := s.sn.UpperDir(ctx, l.ChainID)
	if err != nil {
		return "snapshot directory: " + err.Error()
	}
	if _, err := os.Stat(dir); err != nil {
		return "snapshot directory missing"
	}
	if err := s.sn.Verify(ctx, l.ChainID); err != nil {
		return err.Error()
	}
	if err := s.compareLayer(ctx, l, dir); err != nil {
		return "snapshot differs from layer: " + err.Error()
	}
	return ""
}

// compareLayer checks that every entry of the layer's tar is in dir with
// the same type (and size, for files), whiteouts in overlay form.
func (s *Store) compareLayer(ctx context.Context, l Layer, dir string) error {
	f, err := s.cs.Open(ctx, l.Blob.Digest)
	if err != nil {
		return err
	}
	defer f.Close()
	dr, _, err := Decompress(f)
	if err != nil {
		return err
	}
	defer dr.Close()
	type want struct {
		typ  byte
		size int64
	}
	expect := map[string]want{}
	var order []string
	tr := tar.NewReader(dr)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		p := filepath.Clean(strings.TrimLeft(hdr.Name, "/"))
		base := filepath.Base(p)
		switch {
		case base == ".wh..wh..opq":
			p, hdr = filepath.Dir(p), &tar.Header{Typeflag: 'O'}
		case strings.HasPrefix(base, ".wh..wh."):
			continue
		case strings.HasPrefix(base, ".wh."):
			p = filepath.Join(filepath.Dir(p), base[4:])
			hdr = &tar.Header{Typeflag: 'W'}
			for k := range expect {
				if strings.HasPrefix(k, p+"/") {
					delete(expect, k)
				}
			}
		}
		if _, ok := expect[p]; !ok {
			order = append(order, p)
		}
		if hdr.Typeflag == 'O' {
			if _, ok := expect[p]; ok {
				continue
			}
		}
		expect[p] = want{hdr.Typeflag, hdr.Size}
	}
	for _, p := range order {
		w, ok := expect[p]
		if !ok || p == "." {
			continue
		}
		parent, err := securejoin.SecureJoin(dir, filepath.Dir(p))
		if err != nil {
			return err
		}
		full := filepath.Join(parent, filepath.Base(p))
		var st unix.Stat_t
		if err := unix.Lstat(full, &st); err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		fmtType := st.Mode & unix.S_IFMT
		ok = true
		switch w.typ {
		case tar.TypeReg, tar.TypeRegA:
			ok = fmtType == unix.S_IFREG && st.Size == w.size
		case tar.TypeLink:
			ok = fmtType != unix.S_IFDIR
		case tar.TypeDir:
			ok = fmtType == unix.S_IFDIR
		case 'O':
			v := make([]byte, 4)
			n, err := unix.Lgetxattr(full, "trusted.overlay.opaque", v)
			ok = fmtType == unix.S_IFDIR && err == nil && string(v[:n]) == "y"
		case tar.TypeSymlink:
			ok = fmtType == unix.S_IFLNK
		case 'W':
			ok = fmtType == unix.S_IFCHR && st.Rdev == 0
		case tar.TypeChar:
			ok = fmtType == unix.S_IFCHR
		case tar.TypeBlock:
			ok = fmtType == unix.S_IFBLK
		case tar.TypeFifo:
			ok = fmtType == unix.S_IFIFO
		}
		if !ok {
			return fmt.Errorf("%s: wrong type or size", p)
		}
	}
	return nil
}
