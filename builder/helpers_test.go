package builder

import (
	"archive/tar"
	"io"
	"runtime"
	"testing"
)

type tarEntry struct {
	name, body, link string
}

func writeTarEntries(t *testing.T, w io.Writer, entries []tarEntry) {
	t.Helper()
	tw := tar.NewWriter(w)
	for _, e := range entries {
		hdr := &tar.Header{Name: e.name, Mode: 0o644, Size: int64(len(e.body)), Typeflag: tar.TypeReg}
		if e.link != "" {
			hdr = &tar.Header{Name: e.name, Linkname: e.link, Mode: 0o777, Typeflag: tar.TypeSymlink}
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if e.link == "" {
			tw.Write([]byte(e.body))
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
}

func writeTarFile(t *testing.T, w io.Writer, name, body string) {
	writeTarEntries(t, w, []tarEntry{{name: name, body: body}})
}

func goarch() string { return runtime.GOARCH }
