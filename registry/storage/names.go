package storage

import (
	"fmt"
	"regexp"

	digest "github.com/opencontainers/go-digest"
)

var (
	// nameRe is the distribution-spec repository name grammar.
	nameRe = regexp.MustCompile(`^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$`)
	tagRe  = regexp.MustCompile(`^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$`)
)

// maxNameLength bounds a repository name, as distribution does.
const maxNameLength = 255

// ValidateName checks a repository name against the OCI grammar.
func ValidateName(name string) error {
	if len(name) > maxNameLength || !nameRe.MatchString(name) {
		return fmt.Errorf("repository %q: %w", name, ErrNameInvalid)
	}
	return nil
}

// ValidTag reports whether s is a well-formed tag.
func ValidTag(s string) bool { return tagRe.MatchString(s) }

// ParseDigest parses and validates a digest, classing failures as ErrDigestInvalid.
func ParseDigest(s string) (digest.Digest, error) {
	d, err := digest.Parse(s)
	if err != nil {
		return "", fmt.Errorf("digest %q: %v: %w", s, err, ErrDigestInvalid)
	}
	return d, nil
}
