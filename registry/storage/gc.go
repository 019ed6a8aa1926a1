package storage

import (
	"context"
	"encoding/json"
	"fmt"
	"path"
	"strings"
	"time"

	digest "github.com/opencontainers/go-digest"
)

// GCOptions tunes a collection.
type GCOptions struct {
	// DryRun reports what would be freed without removing anything.
	DryRun bool
	// Grace protects anything linked or written more recently than this:
	// a client pushes blobs before the manifest naming them, and those blobs
	// must survive a collection that runs in between.
	Grace time.Duration
	// UploadTTL purges uploads untouched for this long (0: never).
	UploadTTL time.Duration
}

// DefaultGrace is the grace period `berth-registry gc` uses unless told otherwise.
const DefaultGrace = time.Hour

// GCReport says what a collection freed (or would free, in a dry run).
type GCReport struct {
	Repositories     int
	ManifestsDeleted int
	LinksRemoved     int
	BlobsDeleted     int
	UploadsPurged    int
	BytesFreed       int64
	Duration         time.Duration
	DryRun           bool
}

// String is the one-line report.
func (r GCReport) String() string {
	verb := "freed"
	if r.DryRun {
		verb = "would free"
	}
	return fmt.Sprintf("gc: %s %d bytes: %d blobs, %d manifests, %d repository links, %d stale uploads across %d repositories in %s",
		verb, r.BytesFreed, r.BlobsDeleted, r.ManifestsDeleted, r.LinksRemoved, r.UploadsPurged, r.Repositories, r.Duration.Round(time.Millisecond))
}

// GC removes manifests no tag reaches (keeping every child of a kept index
// and every referrer of a kept manifest) and the blobs no kept manifest
// names, while the registry serves.
//
// It marks without holding the lock; upload commits, mounts and manifest
// puts made meanwhile are noted by the Locker. It then takes the lock
// exclusively, marks from those notes, and sweeps. Only the sweep pauses
// link operations; reads never wait.
func (s *Store) GC(ctx context.Context, opts GCOptions) (GCReport, error) {
	start := time.Now()
	rep := GCReport{DryRun: opts.DryRun}
	young := func(t time.Time) bool { return start.Sub(t) < opts.Grace }

	release, err := s.locker.Collect(ctx)
	if err != nil {
		return rep, err
	}
	defer release()
	unlock, err := s.locker.Lock(ctx)
	if err != nil {
		return rep, err
	}
	err = s.locker.BeginCollection(ctx)
	unlock()
	if err != nil {
		return rep, err
	}
	ended := false
	defer func() {
		if !ended { // an error path: stop recording
			if unlock, err := s.locker.Lock(ctx); err == nil {
				s.locker.EndCollection(ctx)
				unlock()
			}
		}
	}()

	m := &marker{s: s, keep: map[digest.Digest]bool{}, marked: map[string]map[digest.Digest]bool{}, revs: map[string]map[digest.Digest]time.Time{}}
	repos, err := s.Repositories(ctx)
	if err != nil {
		return rep, err
	}
	rep.Repositories = len(repos)
	for _, repo := range repos {
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		revs, err := m.revisions(ctx, repo)
		if err != nil {
			return rep, err
		}
		tags, err := s.Tags(ctx, repo)
		if err != nil && !notFound(err) {
			return rep, err
		}
		for _, t := range tags {
			d, err := s.readLink(ctx, tagLinkPath(repo, t))
			if err != nil {
				continue
			}
			if err := m.mark(ctx, repo, d); err != nil {
				return rep, err
			}
		}
		for d, mod := range revs {
			if young(mod) {
				if err := m.mark(ctx, repo, d); err != nil {
					return rep, err
				}
			}
		}
	}

	unlock, err = s.locker.Lock(ctx)
	if err != nil {
		return rep, err
	}
	defer unlock()
	notes, err := s.locker.EndCollection(ctx)
	ended = true
	if err != nil {
		return rep, err
	}
	for _, n := range notes {
		switch n.Kind {
		case NoteBlob:
			m.keep[n.Digest] = true
		case NoteManifest:
			delete(m.revs, n.Repo) // list again: the manifest is new
			if _, err := m.revisions(ctx, n.Repo); err != nil {
				return rep, err
			}
			if err := m.mark(ctx, n.Repo, n.Digest); err != nil {
				return rep, err
			}
		}
	}

	for _, repo := range repos {
		for d, mod := range m.revs[repo] {
			if m.marked[repo][d] || young(mod) {
				continue
			}
			rep.ManifestsDeleted++
			if opts.DryRun {
				continue
			}
			if err := s.DeleteManifest(ctx, repo, d.String()); err != nil && !notFound(err) {
				return rep, err
			}
		}
	}
	// Links second: a young link keeps its blob even if nothing names it yet.
	for _, repo := range repos {
		links, err := s.listDigests(ctx, layersRoot(repo))
		if err != nil {
			return rep, err
		}
		for d, mod := range links {
			if m.keep[d] {
				continue
			}
			if young(mod) {
				m.keep[d] = true
				continue
			}
			rep.LinksRemoved++
			if !opts.DryRun {
				if err := s.d.Delete(ctx, path.Dir(layerLinkPath(repo, d))); err != nil && !notFound(err) {
					return rep, err
				}
			}
		}
		if opts.UploadTTL > 0 {
			ups, _ := s.d.List(ctx, path.Join(repoPath(repo), "_uploads"))
			for _, u := range ups {
				fi, err := s.d.Stat(ctx, path.Join(u, "data"))
				if err != nil || start.Sub(fi.ModTime) < opts.UploadTTL {
					continue
				}
				rep.UploadsPurged++
				if !opts.DryRun {
					s.d.Delete(ctx, u)
					s.dropState(repo, path.Base(u))
				}
			}
		}
	}
	// Blobs last.
	algs, err := s.d.List(ctx, blobsRoot)
	if err != nil && !notFound(err) {
		return rep, err
	}
	for _, alg := range algs {
		prefixes, err := s.d.List(ctx, alg)
		if err != nil {
			return rep, err
		}
		for _, pre := range prefixes {
			blobs, err := s.d.List(ctx, pre)
			if err != nil {
				return rep, err
			}
			for _, b := range blobs {
				d := digest.NewDigestFromEncoded(digest.Algorithm(path.Base(alg)), path.Base(b))
				if d.Validate() != nil || m.keep[d] {
					continue
				}
				fi, err := s.d.Stat(ctx, path.Join(b, "data"))
				if err != nil || young(fi.ModTime) {
					continue
				}
				rep.BlobsDeleted++
				rep.BytesFreed += fi.Size
				if !opts.DryRun {
					if err := s.d.Delete(ctx, b); err != nil && !notFound(err) {
						return rep, err
					}
				}
			}
		}
	}
	rep.Duration = time.Since(start)
	return rep, nil
}

// marker is the mark phase's state.
type marker struct {
	s      *Store
	keep   map[digest.Digest]bool                 // blobs (and manifests) to keep, registry-wide
	marked map[string]map[digest.Digest]bool      // repo -> manifests kept there
	revs   map[string]map[digest.Digest]time.Time // repo -> manifest revisions and link times
}

func (m *marker) revisions(ctx context.Context, repo string) (map[digest.Digest]time.Time, error) {
	if r, ok := m.revs[repo]; ok {
		return r, nil
	}
	r, err := m.s.listDigests(ctx, revisionsRoot(repo))
	if err != nil {
		return nil, err
	}
	m.revs[repo] = r
	return r, nil
}

// mark keeps manifest d of repo, its config and layers, the children of an
// index and every referrer, recursively. Content deleted meanwhile is skipped.
func (m *marker) mark(ctx context.Context, repo string, d digest.Digest) error {
	revs, err := m.revisions(ctx, repo)
	if err != nil {
		return err
	}
	if _, ok := revs[d]; !ok {
		return nil // not in this repository (e.g. a subject pushed elsewhere)
	}
	if m.marked[repo] == nil {
		m.marked[repo] = map[digest.Digest]bool{}
	}
	if m.marked[repo][d] {
		return nil
	}
	m.marked[repo][d] = true
	m.keep[d] = true
	body, err := m.s.d.GetContent(ctx, blobDataPath(d))
	if err != nil {
		if notFound(err) {
			return nil
		}
		return err
	}
	var pm parsedManifest
	if json.Unmarshal(body, &pm) == nil {
		if pm.Config != nil {
			m.keep[pm.Config.Digest] = true
		}
		for _, l := range pm.Layers {
			m.keep[l.Digest] = true
		}
		for _, c := range pm.Manifests {
			if err := m.mark(ctx, repo, c.Digest); err != nil {
				return err
			}
		}
	}
	refs, err := m.s.Referrers(ctx, repo, d, "")
	if err != nil {
		return err
	}
	for _, ref := range refs {
		if err := m.mark(ctx, repo, ref.Digest); err != nil {
			return err
		}
	}
	return nil
}

// listDigests reads a <alg>/<hex>/link tree into digest -> link time.
func (s *Store) listDigests(ctx context.Context, root string) (map[digest.Digest]time.Time, error) {
	out := map[digest.Digest]time.Time{}
	algs, err := s.d.List(ctx, root)
	if err != nil {
		if notFound(err) {
			return out, nil
		}
		return nil, err
	}
	for _, alg := range algs {
		hexes, err := s.d.List(ctx, alg)
		if err != nil {
			if notFound(err) {
				continue
			}
			return nil, err
		}
		for _, h := range hexes {
			if strings.HasPrefix(path.Base(h), ".") {
				continue
			}
			d := digest.NewDigestFromEncoded(digest.Algorithm(path.Base(alg)), path.Base(h))
			if d.Validate() != nil {
				continue
			}
			fi, err := s.d.Stat(ctx, path.Join(h, "link"))
			if err != nil {
				continue // half-made or half-removed: the next run sees it whole
			}
			out[d] = fi.ModTime
		}
	}
	return out, nil
}
