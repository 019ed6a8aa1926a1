package storage

import (
	"path"

	digest "github.com/opencontainers/go-digest"
)

// Every storage path is built here so the on-disk layout drawn in doc.go has
// one definition.

const (
	repositoriesRoot = "/repositories"
	blobsRoot        = "/blobs"
)

func blobDataPath(d digest.Digest) string {
	hex := d.Encoded()
	return path.Join(blobsRoot, d.Algorithm().String(), hex[:2], hex, "data")
}

func repoPath(repo string) string { return path.Join(repositoriesRoot, repo) }

func visibilityPath(repo string) string { return path.Join(repoPath(repo), "_visibility") }

func layersRoot(repo string) string { return path.Join(repoPath(repo), "_layers") }

func layerLinkPath(repo string, d digest.Digest) string {
	return path.Join(layersRoot(repo), d.Algorithm().String(), d.Encoded(), "link")
}

func revisionsRoot(repo string) string { return path.Join(repoPath(repo), "_manifests", "revisions") }

func revisionDir(repo string, d digest.Digest) string {
	return path.Join(revisionsRoot(repo), d.Algorithm().String(), d.Encoded())
}

func revisionLinkPath(repo string, d digest.Digest) string {
	return path.Join(revisionDir(repo, d), "link")
}

func revisionMediaTypePath(repo string, d digest.Digest) string {
	return path.Join(revisionDir(repo, d), "mediatype")
}

func tagsRoot(repo string) string { return path.Join(repoPath(repo), "_manifests", "tags") }

func tagDir(repo, tag string) string { return path.Join(tagsRoot(repo), tag) }

func tagLinkPath(repo, tag string) string { return path.Join(tagDir(repo, tag), "current", "link") }

func referrersDir(repo string, subject digest.Digest) string {
	return path.Join(repoPath(repo), "_referrers", subject.Algorithm().String(), subject.Encoded())
}

func referrerPath(repo string, subject, referrer digest.Digest) string {
	return path.Join(referrersDir(repo, subject), referrer.Algorithm().String()+"."+referrer.Encoded())
}

func uploadDir(repo, id string) string { return path.Join(repoPath(repo), "_uploads", id) }

func uploadDataPath(repo, id string) string { return path.Join(uploadDir(repo, id), "data") }
