package formatter

import (
	"encoding/json"
	"strconv"
	"strings"
	"time"

	"github.com/docker/go-units"
	"github.com/moby/moby/api/types/image"
)

// Default image table layouts, as docker's.
const (
	ImageTableFormat        = "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
	ImageTableFormatDigests = "table {{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
	HistoryTableFormat      = "table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}"
	// HistoryTableFormatNonHuman is `history -H=false`: absolute times and byte counts.
	HistoryTableFormatNonHuman = "table {{.ID}}\t{{.CreatedAt}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}"
)

// ImageHeaders are the column titles of `images`.
var ImageHeaders = map[string]string{
	"Repository": "REPOSITORY", "Tag": "TAG", "Digest": "DIGEST", "ID": "IMAGE ID",
	"CreatedSince": "CREATED", "CreatedAt": "CREATED AT", "Size": "SIZE", "SharedSize": "SHARED SIZE",
	"UniqueSize": "UNIQUE SIZE", "VirtualSize": "VIRTUAL SIZE", "Containers": "CONTAINERS",
}

// HistoryHeaders are the column titles of `history`.
var HistoryHeaders = map[string]string{
	"ID": "IMAGE", "CreatedSince": "CREATED", "CreatedAt": "CREATED AT", "CreatedBy": "CREATED BY",
	"Size": "SIZE", "Comment": "COMMENT",
}

// ImageContext is one `images` row (one repository:tag of an image).
type ImageContext struct {
	I          image.Summary
	Repo       string
	TagName    string
	DigestName string
	Trunc      bool
	Now        time.Time
}

// ID is the image id, short unless --no-trunc.
func (c *ImageContext) ID() string {
	if c.Trunc {
		return TruncateID(c.I.ID)
	}
	return c.I.ID
}

// Repository is the repository name or "<none>".
func (c *ImageContext) Repository() string { return c.Repo }

// Tag is the tag or "<none>".
func (c *ImageContext) Tag() string { return c.TagName }

// Digest is the repository digest or "<none>".
func (c *ImageContext) Digest() string { return c.DigestName }

// CreatedSince is "2 hours ago".
func (c *ImageContext) CreatedSince() string { return HumanAgo(time.Unix(c.I.Created, 0), c.Now) }

// CreatedAt is the creation time.
func (c *ImageContext) CreatedAt() string { return time.Unix(c.I.Created, 0).String() }

// Size is the image's size in decimal units ("1.98MB").
func (c *ImageContext) Size() string { return units.HumanSizeWithPrecision(float64(c.I.Size), 3) }

// VirtualSize is the size with docker's older rounding (kept for old templates).
func (c *ImageContext) VirtualSize() string { return units.HumanSize(float64(c.I.Size)) }

// UniqueSize is the size not shared with other images (N/A unless the daemon reports sharing).
func (c *ImageContext) UniqueSize() string {
	if c.I.SharedSize == -1 || c.I.SharedSize == 0 && c.I.Containers == -1 {
		return "N/A"
	}
	return units.HumanSizeWithPrecision(float64(c.I.Size-c.I.SharedSize), 3)
}

// SharedSize is the size shared with other images.
func (c *ImageContext) SharedSize() string {
	if c.I.SharedSize == -1 {
		return "N/A"
	}
	return units.HumanSizeWithPrecision(float64(c.I.SharedSize), 3)
}

// Containers is the number of containers using the image.
func (c *ImageContext) Containers() string {
	if c.I.Containers == -1 {
		return "N/A"
	}
	return units.HumanSize(float64(c.I.Containers))
}

// ImageRows expands images into one row per repository:tag (docker's `images` rows),
// "<none>" where an image has no tag or digest.
func ImageRows(images []image.Summary, trunc, digests bool, now time.Time) []any {
	var rows []any
	for _, img := range images {
		before := len(rows)
		repoDigests := map[string][]string{}
		var digestOrder []string
		for _, rd := range img.RepoDigests {
			repo, dg, ok := strings.Cut(rd, "@")
			if !ok {
				continue
			}
			if _, seen := repoDigests[repo]; !seen {
				digestOrder = append(digestOrder, repo)
			}
			repoDigests[repo] = append(repoDigests[repo], dg)
		}
		add := func(repo, tag, dg string) {
			rows = append(rows, &ImageContext{I: img, Repo: repo, TagName: tag, DigestName: dg, Trunc: trunc, Now: now})
		}
		tagged := map[string]bool{}
		for _, rt := range img.RepoTags {
			repo, tag := splitRepoTag(rt)
			if repo == "<none>" {
				continue
			}
			tagged[repo] = true
			dg := "<none>"
			if ds := repoDigests[repo]; len(ds) > 0 {
				dg = ds[0]
			}
			if digests && len(repoDigests[repo]) > 1 {
				for _, d := range repoDigests[repo] {
					add(repo, tag, d)
				}
				continue
			}
			add(repo, tag, dg)
		}
		for _, repo := range digestOrder {
			if tagged[repo] {
				continue
			}
			for _, d := range repoDigests[repo] {
				add(repo, "<none>", d)
				if !digests {
					break
				}
			}
		}
		if len(rows) == before {
			add("<none>", "<none>", "<none>")
		}
	}
	return rows
}

// splitRepoTag splits "host:5000/repo:tag" at the tag's colon, not the port's.
func splitRepoTag(rt string) (string, string) {
	i := strings.LastIndex(rt, ":")
	if i < 0 || strings.Contains(rt[i:], "/") {
		return rt, "<none>"
	}
	return rt[:i], rt[i+1:]
}

// HistoryContext is one `history` row.
type HistoryContext struct {
	H     image.HistoryResponseItem
	Trunc bool
	Human bool
	Now   time.Time
}

// ID is the layer's image id or "<missing>".
func (c *HistoryContext) ID() string {
	if c.H.ID == "" || c.H.ID == "<missing>" {
		return "<missing>"
	}
	if c.Trunc {
		return TruncateID(c.H.ID)
	}
	return c.H.ID
}

// CreatedSince is "2 hours ago" (or RFC3339 with --human=false).
func (c *HistoryContext) CreatedSince() string {
	if !c.Human {
		return c.CreatedAt()
	}
	return HumanAgo(time.Unix(c.H.Created, 0), c.Now)
}

// CreatedAt is RFC 3339.
func (c *HistoryContext) CreatedAt() string { return time.Unix(c.H.Created, 0).Format(time.RFC3339) }

// CreatedBy is the step, cut at 45 characters unless --no-trunc.
func (c *HistoryContext) CreatedBy() string {
	s := strings.ReplaceAll(c.H.CreatedBy, "\t", " ")
	if c.Trunc {
		s = Ellipsis(s, 45)
	}
	return s
}

// Size is the layer size.
func (c *HistoryContext) Size() string {
	if c.Human {
		return units.HumanSizeWithPrecision(float64(c.H.Size), 3)
	}
	return strconv.FormatInt(c.H.Size, 10)
}

// Comment is the layer comment.
func (c *HistoryContext) Comment() string { return c.H.Comment }

// MarshalJSON renders the row as its template fields, so {{json .}} prints what docker prints.
func (c *ImageContext) MarshalJSON() ([]byte, error) { return json.Marshal(FieldMap(c)) }

// MarshalJSON renders the row as its template fields.
func (c *HistoryContext) MarshalJSON() ([]byte, error) { return json.Marshal(FieldMap(c)) }
