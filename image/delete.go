package image

import (
	"context"
	"encoding/json"
	"errors"
	apiimage "github.com/moby/moby/api/types/image"
	"strings"

	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/metadata"
	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	bolt "go.etcd.io/bbolt"
)

// DeleteResponse is one line of `docker rmi` output.
type DeleteResponse = apiimage.DeleteResponse

// RunningUsers may be implemented by Users to tell running containers apart
// (they block removal even with force).
type RunningUsers interface {
	ImageRunningUsers(ctx context.Context, id digest.Digest) []string
}

func shortID(id digest.Digest) string {
	_, e, _ := strings.Cut(string(id), ":")
	if len(e) > 12 {
		e = e[:12]
	}
	return e
}

// Tag points target (normalised, "latest" when untagged) at the image source
// names.
func (s *Store) Tag(ctx context.Context, source, target string) error {
	t, err := ParseTag(target)
	if err != nil {
		return err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.db.Update(func(tx *bolt.Tx) error {
		id, err := resolve(tx, source)
		if err != nil {
			return err
		}
		rec, err := getRecord(tx, id)
		if err != nil || rec == nil {
			return errdefs.NotFound("No such image: %s", source)
		}
		rec.Tagged = nowUTC()
		if err := putRecord(tx, id, rec); err != nil {
			return err
		}
		return tx.Bucket(metadata.BucketReferences).Put([]byte(t.String()), []byte(id))
	})
}

// Delete removes a name or an image, as `docker rmi` does (and with its
// messages): a name is untagged and the image deleted when nothing else
// names it; an id deletes the image, and with force untags all its names
// first. An image a container uses is refused unless forced (a running
// container, or a child image, refuses even then). Parents left untagged and
// childless are deleted too unless noprune.
func (s *Store) Delete(ctx context.Context, ref string, force, noprune bool) ([]DeleteResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()

	var id digest.Digest
	var names []reference.Named
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		if id, err = resolve(tx, ref); err != nil {
			return err
		}
		names = parseNames(namesOf(tx)[id])
		return nil
	})
	if err != nil {
		return nil, err
	}

	var out []DeleteResponse
	quiet := false
	if !isIDPrefix(id, ref) {
		parsed, err := reference.ParseNormalizedNamed(ref)
		if err != nil {
			return nil, errdefs.InvalidArgument("invalid reference format: %s", ref)
		}
		if _, ok := parsed.(reference.Digested); !ok {
			parsed = reference.TagNameOnly(parsed)
		}
		if !force && isSingleReference(names) {
			if users := s.imageUsers(ctx, id); len(users) > 0 {
				return nil, errdefs.Conflict("conflict: unable to remove repository reference %q (must force) - container %s is using its referenced image %s", ref, shortStr(users[0]), shortID(id))
			}
		}
		remove := []reference.Named{parsed}
		var remaining []reference.Named
		for _, n := range names {
			if n.String() != parsed.String() {
				remaining = append(remaining, n)
			}
		}
		if _, ok := parsed.(reference.Canonical); !ok {
			tagLeft := false
			for _, n := range remaining {
				if _, c := n.(reference.Canonical); !c && n.Name() == parsed.Name() {
					tagLeft = true
				}
			}
			if !tagLeft {
				var keep []reference.Named
				for _, n := range remaining {
					if _, c := n.(reference.Canonical); c && n.Name() == parsed.Name() {
						remove = append(remove, n)
					} else {
						keep = append(keep, n)
					}
				}
				remaining = keep
			}
		}
		if err := s.untag(remove...); err != nil {
			return nil, err
		}
		for _, n := range remove {
			out = append(out, DeleteResponse{Untagged: reference.FamiliarString(n)})
		}
		if len(remaining) > 0 {
			return out, nil
		}
		names = nil
		quiet = true
	} else if isSingleReference(names) {
		if err := s.conflict(ctx, id, names, force, true); err != nil {
			return nil, err
		}
		if err := s.untag(names...); err != nil {
			return nil, err
		}
		for _, n := range names {
			out = append(out, DeleteResponse{Untagged: reference.FamiliarString(n)})
		}
		names = nil
	}
	more, err := s.deleteHelper(ctx, id, names, force, !noprune, quiet)
	out = append(out, more...)
	if err == nil {
		// Layers an earlier removal had to leave to a container that is
		// gone now go too.
		removed, gerr := s.gcLocked(ctx)
		for _, c := range removed {
			out = append(out, DeleteResponse{Deleted: c})
		}
		err = gerr
	}
	return out, err
}

// GC removes the layers (with their snapshots and blobs) that no image uses
// and no container builds on. The daemon may call it after removing a
// container whose image was force-deleted; Delete and Prune call it too.
func (s *Store) GC(ctx context.Context) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.gcLocked(ctx)
}

func (s *Store) gcLocked(ctx context.Context) ([]string, error) {
	var unused []Layer
	parentOf := map[string]string{}
	s.db.View(func(tx *bolt.Tx) error {
		used, _ := s.references(tx)
		return tx.Bucket(BucketLayers).ForEach(func(k, _ []byte) error {
			l, err := getLayer(tx, string(k))
			if err != nil || l == nil {
				return nil
			}
			parentOf[l.ChainID] = l.Parent
			if !used[l.ChainID] && !s.held(l.ChainID) {
				unused = append(unused, *l)
			}
			return nil
		})
	})
	blobs := s.takeOrphans()
	if len(unused) == 0 && len(blobs) == 0 {
		return nil, nil
	}
	sortByDepth(unused, parentOf)
	var chainIDs []string
	s.db.View(func(tx *bolt.Tx) error {
		for i := range unused {
			chainIDs = append(chainIDs, unused[i].ChainID)
			blobs = append(blobs, layerBlobs(tx, &unused[i])...)
		}
		return nil
	})
	return s.collectAll(ctx, chainIDs, blobs)
}

// collectAll is collect for candidates that are not one chain: a layer a
// container still builds on stays, and so do the ones below it.
func (s *Store) collectAll(ctx context.Context, chainIDs []string, blobs []digest.Digest) ([]string, error) {
	var removed []string
	var errs []error
	for _, c := range chainIDs {
		r, err := s.collect(ctx, []string{c}, nil)
		removed = append(removed, r...)
		if err != nil {
			errs = append(errs, err)
		}
	}
	_, err := s.collect(ctx, nil, blobs)
	return removed, errors.Join(append(errs, err)...)
}

// conflict reports why id cannot be deleted: children or running containers
// always; when not forced, also remaining names (unless ignoreNames) and
// stopped containers. used says whether a container is the reason.
func (s *Store) conflict(ctx context.Context, id digest.Digest, names []reference.Named, force, ignoreNames bool) error {
	if err := s.checkChildren(id); err != nil {
		return err
	}
	s.usersMu.Lock()
	u := s.users
	s.usersMu.Unlock()
	if ru, ok := u.(RunningUsers); ok {
		if running := ru.ImageRunningUsers(ctx, id); len(running) > 0 {
			return &useConflict{errdefs.Conflict("conflict: unable to delete %s (cannot be forced) - image is being used by running container %s", shortID(id), shortStr(running[0]))}
		}
	}
	if force {
		return nil
	}
	if !ignoreNames && len(names) > 0 {
		return errdefs.Conflict("conflict: unable to delete %s (must be forced) - image is referenced in multiple repositories", shortID(id))
	}
	if users := s.imageUsers(ctx, id); len(users) > 0 {
		return &useConflict{errdefs.Conflict("conflict: unable to delete %s (must be forced) - image is being used by stopped container %s", shortID(id), shortStr(users[0]))}
	}
	return nil
}

// useConflict marks a conflict caused by a container.
type useConflict struct{ error }

func (u *useConflict) Unwrap() error { return u.error }

// deleteHelper deletes image id whose remaining names are names (s.mu held).
// quiet keeps a conflicting image silently when it is still tagged or used
// (its last name was just removed on purpose).
func (s *Store) deleteHelper(ctx context.Context, id digest.Digest, names []reference.Named, force, prune, quiet bool) ([]DeleteResponse, error) {
	var out []DeleteResponse
	if err := s.conflict(ctx, id, names, force, false); err != nil {
		var uc *useConflict
		if quiet && (len(names) > 0 || errors.As(err, &uc)) {
			return out, nil
		}
		return out, err
	}
	if force {
		if err := s.untag(names...); err != nil {
			return out, err
		}
		for _, n := range names {
			out = append(out, DeleteResponse{Untagged: reference.FamiliarString(n)})
		}
	}
	rec, removed, err := s.deleteImage(ctx, id)
	if rec == nil || err != nil {
		return out, err
	}
	out = append(out, DeleteResponse{Deleted: id.String()})
	for _, c := range removed {
		out = append(out, DeleteResponse{Deleted: c})
	}
	if !prune || rec.Parent == "" {
		return out, nil
	}
	// The parent goes too when nothing names it or builds on it.
	var parentNames []string
	var exists bool
	s.db.View(func(tx *bolt.Tx) error {
		parentNames = namesOf(tx)[rec.Parent]
		r, _ := getRecord(tx, rec.Parent)
		exists = r != nil
		return nil
	})
	if !exists || len(parentNames) > 0 {
		return out, nil
	}
	more, err := s.deleteHelper(ctx, rec.Parent, nil, false, prune, true)
	return append(out, more...), err
}

func parseNames(list []string) []reference.Named {
	var out []reference.Named
	for _, n := range list {
		if pn, err := reference.ParseNormalizedNamed(n); err == nil {
			out = append(out, pn)
		}
	}
	return out
}

// isSingleReference: at most one tag, and every name in one repository.
func isSingleReference(names []reference.Named) bool {
	tags := 0
	repo := ""
	for _, n := range names {
		if _, c := n.(reference.Canonical); !c {
			tags++
		}
		if repo != "" && n.Name() != repo {
			return false
		}
		repo = n.Name()
	}
	return tags <= 1
}

func isIDPrefix(id digest.Digest, ref string) bool {
	_, enc, ok := strings.Cut(string(id), ":")
	if !ok || ref == "" {
		return false
	}
	return strings.HasPrefix(string(id), ref) || strings.HasPrefix(enc, ref)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func familiar(n string) string {
	if pn, err := reference.ParseNormalizedNamed(n); err == nil {
		return reference.FamiliarString(pn)
	}
	return n
}

func (s *Store) checkUsers(ctx context.Context, id digest.Digest, force bool) error {
	s.usersMu.Lock()
	u := s.users
	s.usersMu.Unlock()
	if u == nil {
		return nil
	}
	if ru, ok := u.(RunningUsers); ok {
		if running := ru.ImageRunningUsers(ctx, id); len(running) > 0 {
			return errdefs.Conflict("conflict: unable to delete %s (cannot be forced) - image is being used by running container %s", shortID(id), shortStr(running[0]))
		}
	}
	if users := u.ImageUsers(ctx, id); len(users) > 0 && !force {
		return errdefs.Conflict("conflict: unable to delete %s (must be forced) - image is being used by stopped container %s", shortID(id), shortStr(users[0]))
	}
	return nil
}

func shortStr(s string) string {
	if len(s) > 12 {
		return s[:12]
	}
	return s
}

func (s *Store) checkChildren(id digest.Digest) error {
	return s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(metadata.BucketImages).ForEach(func(k, v []byte) error {
			r, err := getRecord(tx, digest.Digest(k))
			if err == nil && r != nil && r.Parent == id {
				return errdefs.Conflict("conflict: unable to delete %s (cannot be forced) - image has dependent child images", shortID(id))
			}
			return nil
		})
	})
}

func (s *Store) untag(names ...reference.Named) error {
	if len(names) == 0 {
		return nil
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(metadata.BucketReferences)
		for _, n := range names {
			if err := b.Delete([]byte(n.String())); err != nil {
				return err
			}
		}
		return nil
	})
}

// deleteImage removes an image record (s.mu held), then the layers,
// snapshots and blobs only it used. It returns the record and the chain IDs
// of the layers removed.
func (s *Store) deleteImage(ctx context.Context, id digest.Digest) (*record, []string, error) {
	var rec *record
	var layers []Layer
	err := s.db.Update(func(tx *bolt.Tx) error {
		var err error
		if rec, err = getRecord(tx, id); err != nil || rec == nil {
			return err
		}
		layers, _ = chain(tx, rec.ChainID)
		return tx.Bucket(metadata.BucketImages).Delete([]byte(id))
	})
	if err != nil {
		return nil, nil, errdefs.System("delete image %s: %w", id, err)
	}
	if rec == nil {
		return nil, nil, nil
	}
	blobs := []digest.Digest{id, rec.Manifest}
	if raw, err := s.cs.ReadBlob(ctx, rec.Manifest); err == nil {
		blobs = append(blobs, manifestBlobs(raw)...)
	}
	var chainIDs []string
	s.db.View(func(tx *bolt.Tx) error {
		for i := len(layers) - 1; i >= 0; i-- {
			chainIDs = append(chainIDs, layers[i].ChainID)
			blobs = append(blobs, layerBlobs(tx, &layers[i])...)
		}
		return nil
	})
	removed, err := s.collect(ctx, chainIDs, blobs)
	return rec, removed, err
}

// references returns the chain IDs and blobs that the remaining images use.
func (s *Store) references(tx *bolt.Tx) (map[string]bool, map[digest.Digest]bool) {
	layers := map[string]bool{}
	blobs := map[digest.Digest]bool{}
	tx.Bucket(metadata.BucketImages).ForEach(func(k, _ []byte) error {
		r, err := getRecord(tx, digest.Digest(k))
		if err != nil || r == nil {
			return nil
		}
		blobs[digest.Digest(k)] = true
		blobs[r.Manifest] = true
		if raw, err := s.cs.ReadBlob(context.Background(), r.Manifest); err == nil {
			for _, d := range manifestBlobs(raw) {
				blobs[d] = true
			}
		}
		ls, _ := chain(tx, r.ChainID)
		for _, l := range ls {
			layers[l.ChainID] = true
			for _, d := range layerBlobs(tx, &l) {
				blobs[d] = true
			}
		}
		return nil
	})
	return layers, blobs
}

// collect removes the candidate layers (top first) and blobs that no image
// uses any more. A layer that a container's snapshot builds on stays.
func (s *Store) collect(ctx context.Context, chainIDs []string, blobs []digest.Digest) ([]string, error) {
	var removed []string
	var usedLayers map[string]bool
	var usedBlobs map[digest.Digest]bool
	s.db.View(func(tx *bolt.Tx) error {
		usedLayers, usedBlobs = s.references(tx)
		// Blobs of layers still recorded (held by a pull, say) stay too.
		tx.Bucket(BucketLayers).ForEach(func(k, _ []byte) error {
			if l, _ := getLayer(tx, string(k)); l != nil && !contains(chainIDs, l.ChainID) {
				for _, d := range layerBlobs(tx, l) {
					usedBlobs[d] = true
				}
			}
			return nil
		})
		return nil
	})
	var errs []error
	for _, c := range chainIDs {
		if usedLayers[c] || s.held(c) {
			break
		}
		if err := s.sn.Remove(ctx, c); err != nil && !errdefs.IsNotFound(err) {
			if errdefs.IsConflict(err) {
				// A container builds on it: keep it and everything below.
				break
			}
			errs = append(errs, err)
			break
		}
		s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(BucketLayers).Delete([]byte(c)) })
		removed = append(removed, c)
	}
	// Re-read which layers remain, so blobs of kept layers stay.
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
	for _, b := range blobs {
		if b == "" || usedBlobs[b] {
			continue
		}
		if err := s.deleteBlob(ctx, b); err != nil && !errdefs.IsNotFound(err) {
			errs = append(errs, err)
		}
		usedBlobs[b] = true
	}
	return removed, errors.Join(errs...)
}

// manifestBlobs lists the config and layer digests a manifest names.
func manifestBlobs(raw []byte) []digest.Digest {
	var m ocispec.Manifest
	if err := jsonUnmarshal(raw, &m); err != nil {
		return nil
	}
	out := []digest.Digest{m.Config.Digest}
	for _, l := range m.Layers {
		out = append(out, l.Digest)
	}
	return out
}

// layerBlobs are the blobs a layer keeps alive: its own, and the compressed
// copy made for push (see distribution.go), if any.
func layerBlobs(tx *bolt.Tx, l *Layer) []digest.Digest {
	out := []digest.Digest{l.Blob.Digest}
	if b := tx.Bucket(bucketCompressed); b != nil {
		if v := b.Get([]byte(l.DiffID)); v != nil {
			var desc ocispec.Descriptor
			if json.Unmarshal(v, &desc) == nil && desc.Digest != "" {
				out = append(out, desc.Digest)
			}
		}
	}
	return out
}
