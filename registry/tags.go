package registry

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"

	"github.com/berth-dev/berth/registry/storage"
	specs "github.com/opencontainers/distribution-spec/specs-go/v1"
)

// paginate applies the n and last parameters to a sorted list and sets the
// Link header for the next page.
func paginate(w http.ResponseWriter, r *http.Request, all []string) ([]string, error) {
	q := r.URL.Query()
	if last := q.Get("last"); last != "" {
		i := sort.SearchStrings(all, last)
		if i < len(all) && all[i] == last {
			i++
		}
		all = all[i:]
	}
	if ns := q.Get("n"); ns != "" {
		n, err := strconv.Atoi(ns)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("n=%q: %w", ns, storage.ErrRangeInvalid)
		}
		if n < len(all) {
			all = all[:n]
			if n > 0 {
				next := url.Values{"n": {ns}, "last": {all[n-1]}}
				w.Header().Set("Link", fmt.Sprintf(`<%s?%s>; rel="next"`, r.URL.Path, next.Encode()))
			}
		}
	}
	return all, nil
}

func writeJSON(w http.ResponseWriter, r *http.Request, v any) {
	b, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", itoa(int64(len(b))))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		w.Write(b)
	}
}

func (rg *registry) tags(w http.ResponseWriter, r *http.Request, rt route) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		methodNotAllowed(w, r, "GET, HEAD")
		return
	}
	all, err := rg.store.Tags(r.Context(), rt.repo)
	if err != nil {
		writeError(w, r, err)
		return
	}
	page, err := paginate(w, r, all)
	if err != nil {
		writeError(w, r, newError(http.StatusBadRequest, "PAGINATION_NUMBER_INVALID", err.Error()))
		return
	}
	writeJSON(w, r, specs.TagList{Name: rt.repo, Tags: page})
}

func (rg *registry) catalog(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		methodNotAllowed(w, r, "GET, HEAD")
		return
	}
	all, err := rg.store.Repositories(r.Context())
	if err != nil {
		writeError(w, r, err)
		return
	}
	visible := make([]string, 0, len(all))
	for _, repo := range all {
		if rg.mayPull(r, repo) {
			visible = append(visible, repo)
		}
	}
	page, err := paginate(w, r, visible)
	if err != nil {
		writeError(w, r, newError(http.StatusBadRequest, "PAGINATION_NUMBER_INVALID", err.Error()))
		return
	}
	writeJSON(w, r, specs.RepositoryList{Repositories: page})
}
