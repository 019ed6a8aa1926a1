package image

// The image store keeps, in metadata.db:
//
//	images/
//	  <image id "sha256:...">  -> record (JSON): manifest digest, chain ID, size, parent, created
//	references/
//	  <"docker.io/library/busybox:latest">          -> image id
//	  <"docker.io/library/busybox@sha256:...">      -> image id (repo digests)
//	layers/
//	  <chain id "sha256:...">  -> layer (JSON): diff ID, parent chain ID, blob descriptor, size
//
// The bytes live in the content store (config, manifest and layer blobs,
// named by digest) and in the snapshotter (one committed snapshot per layer,
// keyed by chain ID, shared by every image whose chain contains it).
//
// An image exists once its record is committed; it is written last, after its
// blobs and snapshots. Removing an image deletes its record and names in one
// transaction, then its layers, snapshots and blobs that no other image uses.
// What a crash leaves between those steps is unreferenced, and NewStore (and
// Check with repair) removes it.

import (
	"context"
	"encoding/json"
	"errors"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/berth-dev/berth/content"
	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/metadata"
	"github.com/berth-dev/berth/snapshot"
	"github.com/distribution/reference"
	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	bolt "go.etcd.io/bbolt"
)

// BucketLayers holds one record per unpacked layer, keyed by chain ID.
var BucketLayers = []byte("layers")

// Image is an image as the daemon sees it.
type Image struct {
	ID          digest.Digest             // config digest: Docker's image ID
	Config      dockerspec.DockerOCIImage // parsed config
	ChainID     string                    // snapshot key of the top layer ("" if the image has no layers)
	RepoTags    []string                  // familiar form: "busybox:latest"
	RepoDigests []string                  // familiar form: "busybox@sha256:..."
	Size        int64                     // unpacked size of all layers
	Created     time.Time
	Manifest    digest.Digest // the image's manifest in the content store
	Parent      digest.Digest // image this one was committed or built from, if any
	LastTagTime time.Time     // when a name last pointed here
}

// Layer is an unpacked layer: a committed snapshot plus the blob it came from.
type Layer struct {
	ChainID string             `json:"ChainID"`
	DiffID  digest.Digest      `json:"DiffID"`
	Parent  string             `json:"Parent,omitempty"` // chain ID of the layer below
	Blob    ocispec.Descriptor `json:"Blob"`             // the layer's blob in the content store
	Size    int64              `json:"Size"`             // bytes of regular files in the layer

	// hold is the token that keeps this layer from GC until an image
	// made with it is recorded (Create releases it).
	hold uint64
}

// record is what images/<id> holds.
type record struct {
	Manifest digest.Digest `json:"Manifest"`
	ChainID  string        `json:"ChainID,omitempty"`
	Size     int64         `json:"Size"`
	Parent   digest.Digest `json:"Parent,omitempty"`
	Created  time.Time     `json:"Created"`
	// Tagged is when a name last pointed here (Metadata.LastTagTime).
	Tagged time.Time `json:"Tagged,omitzero"`
}

// Users tells which containers use an image; the daemon implements it.
type Users interface {
	ImageUsers(ctx context.Context, id digest.Digest) []string
}

// Store is the image store.
type Store struct {
	db *bolt.DB
	cs *content.Store
	sn *snapshot.Overlay

	// mu orders whole-store operations: removal and GC take it exclusively,
	// creation shares it, so GC never sees a half-registered image.
	mu sync.RWMutex

	usersMu sync.Mutex
	users   Users

	// commitMu makes "is this layer there / commit it / record it" atomic.
	commitMu sync.Mutex

	holdMu     sync.Mutex
	holdSeq    uint64
	holds      map[string]map[uint64]time.Time // chain ID -> tokens of callers that have not made their image yet
	orphans    map[digest.Digest]bool
	extracting map[string]bool       // extract snapshots being unpacked now
	pins       map[digest.Digest]int // blobs that may have lost their last user
}

// NewStore opens the image store and removes what an interrupted operation
// left unreferenced.
func NewStore(db *bolt.DB, cs *content.Store, sn *snapshot.Overlay) (*Store, error) {
	err := db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{metadata.BucketImages, metadata.BucketReferences, BucketLayers} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, errdefs.System("open image metadata: %w", err)
	}
	s := &Store{db: db, cs: cs, sn: sn, holds: map[string]map[uint64]time.Time{}, orphans: map[digest.Digest]bool{}, extracting: map[string]bool{}, pins: map[digest.Digest]int{}}
	if _, err := s.Check(context.Background(), CheckOptions{Repair: true, Fast: true, startup: true}); err != nil {
		return nil, err
	}
	return s, nil
}

// SetUsers sets who answers "which containers use this image".
func (s *Store) SetUsers(u Users) {
	s.usersMu.Lock()
	s.users = u
	s.usersMu.Unlock()
}

func (s *Store) imageUsers(ctx context.Context, id digest.Digest) []string {
	s.usersMu.Lock()
	u := s.users
	s.usersMu.Unlock()
	if u == nil {
		return nil
	}
	return u.ImageUsers(ctx, id)
}

// Content is the content store under the image store.
func (s *Store) Content() *content.Store { return s.cs }

// Snapshots is the snapshotter under the image store.
func (s *Store) Snapshots() *snapshot.Overlay { return s.sn }

// ParseTag normalises a name to a tagged reference (latest when no tag).
// A reference with a digest is refused.
func ParseTag(ref string) (reference.NamedTagged, error) {
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return nil, errdefs.InvalidArgument("invalid reference format: %s: %w", ref, err)
	}
	if _, ok := named.(reference.Digested); ok {
		return nil, errdefs.InvalidArgument("invalid reference %s: a tag cannot contain a digest", ref)
	}
	named = reference.TagNameOnly(named)
	t, ok := named.(reference.NamedTagged)
	if !ok {
		return nil, errdefs.InvalidArgument("invalid reference format: %s", ref)
	}
	return t, nil
}

func getRecord(tx *bolt.Tx, id digest.Digest) (*record, error) {
	v := tx.Bucket(metadata.BucketImages).Get([]byte(id))
	if v == nil {
		return nil, nil
	}
	var r record
	if err := json.Unmarshal(v, &r); err != nil {
		return nil, errdefs.System("image %s: corrupt record: %w", id, err)
	}
	return &r, nil
}

func putRecord(tx *bolt.Tx, id digest.Digest, r *record) error {
	v, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return tx.Bucket(metadata.BucketImages).Put([]byte(id), v)
}

func getLayer(tx *bolt.Tx, chainID string) (*Layer, error) {
	v := tx.Bucket(BucketLayers).Get([]byte(chainID))
	if v == nil {
		return nil, nil
	}
	var l Layer
	if err := json.Unmarshal(v, &l); err != nil {
		return nil, errdefs.System("layer %s: corrupt record: %w", chainID, err)
	}
	return &l, nil
}

func putLayer(tx *bolt.Tx, l *Layer) error {
	v, err := json.Marshal(l)
	if err != nil {
		return err
	}
	return tx.Bucket(BucketLayers).Put([]byte(l.ChainID), v)
}

// resolve finds the image id a user's reference names, inside tx.
func resolve(tx *bolt.Tx, ref string) (digest.Digest, error) {
	notFound := errdefs.NotFound("No such image: %s", ref)
	if ref == "" {
		return "", notFound
	}
	images := tx.Bucket(metadata.BucketImages)
	refs := tx.Bucket(metadata.BucketReferences)
	// A full id, with or without its algorithm.
	if d, err := digest.Parse(ref); err == nil {
		if images.Get([]byte(d)) != nil {
			return d, nil
		}
		return "", notFound
	}
	if named, err := reference.ParseNormalizedNamed(ref); err == nil {
		if _, ok := named.(reference.Digested); !ok {
			named = reference.TagNameOnly(named)
		}
		if v := refs.Get([]byte(named.String())); v != nil {
			return digest.Digest(v), nil
		}
		if c, ok := named.(reference.Canonical); ok {
			// name@digest also matches by config digest or manifest digest.
			id := c.Digest()
			if images.Get([]byte(id)) != nil {
				return id, nil
			}
			var found digest.Digest
			images.ForEach(func(k, v []byte) error {
				var r record
				if json.Unmarshal(v, &r) == nil && r.Manifest == id {
					found = digest.Digest(k)
					return errStop
				}
				return nil
			})
			if found != "" {
				return found, nil
			}
		}
	}
	// A (short) hex id prefix, bare or as "sha256:<prefix>".
	short := strings.TrimPrefix(ref, string(digest.SHA256)+":")
	if isHex(short) {
		var found digest.Digest
		prefix := []byte(string(digest.SHA256) + ":" + short)
		c := images.Cursor()
		for k, _ := c.Seek(prefix); k != nil && strings.HasPrefix(string(k), string(prefix)); k, _ = c.Next() {
			if found != "" {
				return "", errdefs.InvalidArgument("multiple IDs found with provided prefix: %s", ref)
			}
			found = digest.Digest(k)
		}
		if found != "" {
			return found, nil
		}
	}
	return "", notFound
}

func isHex(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// Resolve returns the id of the image ref names, or NotFound.
func (s *Store) Resolve(ctx context.Context, ref string) (digest.Digest, error) {
	var id digest.Digest
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		id, err = resolve(tx, ref)
		return err
	})
	return id, err
}

// Get returns the image ref names: name[:tag], name@digest, a full or short
// id, or "sha256:<id>". A missing image is NotFound("No such image: ref").
func (s *Store) Get(ctx context.Context, ref string) (*Image, error) {
	var img *Image
	err := s.db.View(func(tx *bolt.Tx) error {
		id, err := resolve(tx, ref)
		if err != nil {
			return err
		}
		img, err = s.load(tx, id, namesOf(tx))
		return err
	})
	return img, err
}

// namesOf maps image ids to the references naming them.
func namesOf(tx *bolt.Tx) map[digest.Digest][]string {
	m := map[digest.Digest][]string{}
	tx.Bucket(metadata.BucketReferences).ForEach(func(k, v []byte) error {
		m[digest.Digest(v)] = append(m[digest.Digest(v)], string(k))
		return nil
	})
	return m
}

// load builds an Image from its record and config blob.
func (s *Store) load(tx *bolt.Tx, id digest.Digest, names map[digest.Digest][]string) (*Image, error) {
	r, err := getRecord(tx, id)
	if err != nil {
		return nil, err
	}
	if r == nil {
		return nil, errdefs.NotFound("No such image: %s", id)
	}
	raw, err := s.cs.ReadBlob(context.Background(), id)
	if err != nil {
		return nil, errdefs.System("image %s: read config: %w", id, err)
	}
	img := &Image{ID: id, ChainID: r.ChainID, Size: r.Size, Manifest: r.Manifest, Parent: r.Parent, Created: r.Created, LastTagTime: r.Tagged}
	if err := json.Unmarshal(raw, &img.Config); err != nil {
		return nil, errdefs.System("image %s: parse config: %w", id, err)
	}
	if img.Config.Created != nil {
		img.Created = *img.Config.Created
	}
	for _, n := range names[id] {
		named, err := reference.ParseNormalizedNamed(n)
		if err != nil {
			continue
		}
		if _, ok := named.(reference.Digested); ok {
			img.RepoDigests = append(img.RepoDigests, reference.FamiliarString(named))
		} else {
			img.RepoTags = append(img.RepoTags, reference.FamiliarString(named))
		}
	}
	sort.Strings(img.RepoTags)
	sort.Strings(img.RepoDigests)
	return img, nil
}

// List returns every image, newest first.
func (s *Store) List(ctx context.Context) ([]*Image, error) {
	var out []*Image
	err := s.db.View(func(tx *bolt.Tx) error {
		names := namesOf(tx)
		return tx.Bucket(metadata.BucketImages).ForEach(func(k, _ []byte) error {
			img, err := s.load(tx, digest.Digest(k), names)
			if err != nil {
				// One broken image must not hide the others; Check reports it.
				return nil
			}
			out = append(out, img)
			return nil
		})
	})
	sort.SliceStable(out, func(i, j int) bool { return out[i].Created.After(out[j].Created) })
	return out, err
}

// Layers returns an image's layers, bottom first.
func (s *Store) Layers(ctx context.Context, img *Image) ([]Layer, error) {
	var out []Layer
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		out, err = chain(tx, img.ChainID)
		return err
	})
	return out, err
}

// chain returns the layers from the bottom up to chainID.
func chain(tx *bolt.Tx, chainID string) ([]Layer, error) {
	var out []Layer
	for c := chainID; c != ""; {
		l, err := getLayer(tx, c)
		if err != nil {
			return nil, err
		}
		if l == nil {
			return nil, errdefs.System("layer %s: missing", c)
		}
		out = append(out, *l)
		c = l.Parent
		if len(out) > 10000 {
			return nil, errdefs.System("layer %s: chain too long or cyclic", chainID)
		}
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out, nil
}

var errStop = errors.New("stop")

func nowUTC() time.Time { return time.Now().UTC() }

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

func (s *Store) walkLayers(fn func(*Layer)) error {
	return s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(BucketLayers).ForEach(func(k, _ []byte) error {
			if l, err := getLayer(tx, string(k)); err == nil && l != nil {
				fn(l)
			}
			return nil
		})
	})
}
