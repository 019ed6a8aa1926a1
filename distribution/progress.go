package distribution

import (
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/docker/go-units"
	"github.com/opencontainers/go-digest"
)

// Progress is one message of a pull or push, as docker's JSON stream
// carries it: ID (a short layer id, or a tag), Status (one of the strings
// compose matches, e.g. "Downloading", "Pull complete"), and for transfers
// Current and Total bytes.
type Progress struct {
	ID      string
	Status  string
	Current int64
	Total   int64
	// Detail says to send an (empty) progressDetail, as docker does for
	// per-layer statuses.
	Detail bool
	// Aux is push's final {Tag, Digest, Size}.
	Aux any
}

// Bar renders docker's progress bar, e.g. "[=====>      ]  1.2MB/3.4MB",
// or "" when there is no total.
func (p Progress) Bar() string {
	if p.Total <= 0 || p.Current <= 0 {
		return ""
	}
	const width = 50
	cur := min(p.Current, p.Total)
	n := int(float64(width) * float64(cur) / float64(p.Total))
	bar := strings.Repeat("=", n)
	if n < width {
		bar += ">" + strings.Repeat(" ", width-n-1)
	}
	return fmt.Sprintf("[%s] %8s/%s", bar, units.HumanSize(float64(p.Current)), units.HumanSize(float64(p.Total)))
}

// ProgressFunc receives progress; it must be safe for concurrent use (the
// Service serializes its own calls).
type ProgressFunc func(Progress)

// serial wraps fn so concurrent transfers call it one at a time.
func serial(fn ProgressFunc) ProgressFunc {
	if fn == nil {
		return func(Progress) {}
	}
	var mu sync.Mutex
	return func(p Progress) {
		mu.Lock()
		defer mu.Unlock()
		fn(p)
	}
}

// shortID is docker's 12-hex id of a digest.
func shortID(d digest.Digest) string {
	e := d.Encoded()
	if len(e) > 12 {
		return e[:12]
	}
	return e
}

// progressReader reports bytes read as status, at most every interval.
type progressReader struct {
	r        interface{ Read([]byte) (int, error) }
	fn       ProgressFunc
	id       string
	status   string
	total    int64
	current  int64
	last     time.Time
	interval time.Duration
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.current += int64(n)
	if now := time.Now(); now.Sub(p.last) >= p.interval || (p.total > 0 && p.current == p.total && n > 0) {
		p.last = now
		p.fn(Progress{ID: p.id, Status: p.status, Current: p.current, Total: p.total, Detail: true})
	}
	return n, err
}
