package snapshot

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/berth-dev/berth/errdefs"
	"golang.org/x/sys/unix"
)

// sparseTar is a layer with one PAX 1.0 sparse file f of realSize bytes
// whose only data is "hello" at offset at.
func sparseTar(t *testing.T, realSize, at int64) []byte {
	t.Helper()
	data := []byte("hello")
	spmap := fmt.Sprintf("1\n%d\n%d\n", at, len(data))
	section := make([]byte, 512+len(data))
	copy(section, spmap)
	copy(section[512:], data)
	// archive/tar's writer drops GNU.sparse records: the PAX header is
	// made by hand, as a regular entry whose type byte is then patched.
	var records string
	for _, kv := range [][2]string{{"GNU.sparse.major", "1"}, {"GNU.sparse.minor", "0"}, {"GNU.sparse.name", "f"},
		{"GNU.sparse.realsize", strconv.FormatInt(realSize, 10)}} {
		records += paxRecord(kv[0], kv[1])
	}
	pax := mkTar(t, tentry{name: "PaxHeaders/f", body: records})
	pax = pax[:len(pax)-1024] // without the end-of-archive blocks
	pax[156] = tar.TypeXHeader
	copy(pax[148:156], "        ")
	sum := 0
	for _, c := range pax[:512] {
		sum += int(c)
	}
	copy(pax[148:156], fmt.Sprintf("%06o\x00 ", sum))
	var buf bytes.Buffer
	buf.Write(pax)
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(&tar.Header{Name: "GNUSparseFile.0/f", Typeflag: tar.TypeReg, Mode: 0o644,
		Size: int64(len(section)), Format: tar.FormatUSTAR}); err != nil {
		t.Fatal(err)
	}
	tw.Write(section)
	tw.Close()
	return buf.Bytes()
}

// paxRecord is one "len key=value\n" record, its length counting itself.
func paxRecord(k, v string) string {
	rec := " " + k + "=" + v + "\n"
	n := len(rec) + 1
	for len(strconv.Itoa(n))+len(rec) != n {
		n++
	}
	return strconv.Itoa(n) + rec
}

// TestSparseFiles: a sparse file keeps its holes (little disk used, the data
// where it belongs), and one claiming more than maxSparseSize is refused
// before anything is expanded, by Apply and by both image forms.
func TestSparseFiles(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	const size, at = 1 << 30, 300 << 20
	data := sparseTar(t, size, at)
	check := func(t *testing.T, p string, holes bool) {
		var st unix.Stat_t
		if err := unix.Stat(p, &st); err != nil {
			t.Fatal(err)
		}
		if st.Size != size {
			t.Fatalf("size %d, want %d", st.Size, size)
		}
		if holes && st.Blocks*512 > 1<<20 {
			t.Errorf("%d bytes on disk for a sparse file", st.Blocks*512)
		}
		f, _ := os.Open(p)
		defer f.Close()
		got := make([]byte, 5)
		f.ReadAt(got, at)
		if string(got) != "hello" {
			t.Fatalf("data at %d: %q", at, got)
		}
	}
	t.Run("apply", func(t *testing.T) {
		dir := t.TempDir()
		if _, err := Apply(context.Background(), dir, bytes.NewReader(data)); err != nil {
			t.Fatal(err)
		}
		check(t, filepath.Join(dir, "f"), true)
	})
	for _, mode := range []int{fullImage, indexFromFile, indexFromStream} {
		t.Run(fmt.Sprintf("image-%d", mode), func(t *testing.T) {
			dir := t.TempDir()
			img, _, err := writeImageFile(t, dir, data, mode)
			if err != nil {
				t.Fatal(err)
			}
			var st unix.Stat_t
			unix.Stat(img, &st)
			if st.Blocks*512 > 1<<20 {
				t.Errorf("image takes %d bytes on disk", st.Blocks*512)
			}
			device := ""
			if mode != fullImage {
				device = filepath.Join(dir, "layer.tar")
			}
			// EROFS reports blocks from the size; the image file's own
			// blocks (above) show the holes.
			check(t, filepath.Join(mountImage(t, img, device), "f"), false)
		})
	}
	huge := sparseTar(t, 1<<50, 0)
	if _, err := Apply(context.Background(), t.TempDir(), bytes.NewReader(huge)); !errdefs.IsInvalidArgument(err) {
		t.Errorf("Apply of a 1 PiB sparse file: %v", err)
	}
	for _, mode := range []int{fullImage, indexFromFile, indexFromStream} {
		if _, _, err := writeImageFile(t, t.TempDir(), huge, mode); !errdefs.IsInvalidArgument(err) {
			t.Errorf("image (mode %d) of a 1 PiB sparse file: %v", mode, err)
		}
	}
}
