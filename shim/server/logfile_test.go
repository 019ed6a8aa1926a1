package server

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// entryN is a 10-byte stand-in for a json-file entry: what rotation needs is the trailing newline.
func entryN(i int) string { return fmt.Sprintf(`{"n":%03d}`+"\n", i) }

func TestLogFileRotation(t *testing.T) {
	big := `{"log":"` + strings.Repeat("x", 40) + `"}` + "\n" // 51 bytes
	tests := []struct {
		name     string
		maxSize  int64
		maxFiles int
		existing string   // already in <path> before the shim opens it (a restarted container)
		writes   []string // each Write call
		want     []string // contents of <path>.N ... <path>.1, <path>: oldest first
	}{
		{"no limit", 0, 1, "", []string{entryN(1), entryN(2) + entryN(3)},
			[]string{entryN(1) + entryN(2) + entryN(3)}},
		{"fits exactly, no rotation", 30, 2, "", []string{entryN(1), entryN(2), entryN(3)},
			[]string{entryN(1) + entryN(2) + entryN(3)}},
		{"rotates before the write that would pass the limit", 30, 3, "",
			[]string{entryN(1), entryN(2), entryN(3), entryN(4)},
			[]string{entryN(1) + entryN(2) + entryN(3), entryN(4)}},
		{"keeps max-file files, drops the oldest", 20, 3, "",
			[]string{entryN(1), entryN(2), entryN(3), entryN(4), entryN(5), entryN(6), entryN(7)},
			[]string{entryN(3) + entryN(4), entryN(5) + entryN(6), entryN(7)}},
		{"one write split at entries across rotations", 25, 3, "",
			[]string{entryN(1) + entryN(2) + entryN(3) + entryN(4) + entryN(5) + entryN(6) + entryN(7)},
			[]string{entryN(3) + entryN(4), entryN(5) + entryN(6), entryN(7)}},
		{"max-file 1 starts the file again", 20, 1, "",
			[]string{entryN(1), entryN(2), entryN(3), entryN(4), entryN(5)},
			[]string{entryN(5)}},
		{"an entry larger than the limit gets a file of its own", 30, 3, "",
			[]string{entryN(1), big, entryN(2)},
			[]string{entryN(1), big, entryN(2)}},
		{"a large entry inside one write", 30, 4, "",
			[]string{entryN(1) + big + entryN(2)},
			[]string{entryN(1), big, entryN(2)}},
		{"existing content counts after a restart", 30, 2, entryN(1) + entryN(2),
			[]string{entryN(3), entryN(4)},
			[]string{entryN(1) + entryN(2) + entryN(3), entryN(4)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "c-json.log")
			if tt.existing != "" {
				os.WriteFile(path, []byte(tt.existing), 0o640)
			}
			l, err := openLogFile(path, tt.maxSize, tt.maxFiles)
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range tt.writes {
				if n, err := l.Write([]byte(w)); err != nil || n != len(w) {
					t.Fatalf("Write = %d, %v; want %d, nil", n, err, len(w))
				}
			}
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			var got []string
			for i := len(tt.want) - 1; i >= 1; i-- {
				b, err := os.ReadFile(fmt.Sprintf("%s.%d", path, i))
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, string(b))
			}
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, string(b))
			if strings.Join(got, "|") != strings.Join(tt.want, "|") {
				t.Errorf("files (oldest first)\n%q\nwant\n%q", got, tt.want)
			}
			if ents, _ := os.ReadDir(dir); len(ents) != len(tt.want) {
				t.Errorf("%d files in the log dir, want %d", len(ents), len(tt.want))
			}
		})
	}
}

// TestLogFileRotationNewInode: a rotated-away file is never written again and its successor is a new inode,
// which is what `logs -f` watches for.
func TestLogFileRotationNewInode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c-json.log")
	l, err := openLogFile(path, 10, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	l.Write([]byte(entryN(1)))
	before, _ := os.Stat(path)
	l.Write([]byte(entryN(2)))
	after, _ := os.Stat(path)
	rotated, _ := os.Stat(path + ".1")
	if os.SameFile(before, after) || !os.SameFile(before, rotated) {
		t.Errorf("after a rotation <path> must be a new file and <path>.1 the old one")
	}
}

// TestJSONLogRotates runs the line logger over a rotating file: no entry is cut in two by a rotation.
func TestJSONLogRotates(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "c-json.log")
	lf, err := openLogFile(path, 1000, 3)
	if err != nil {
		t.Fatal(err)
	}
	s := (&jsonLog{f: lf, now: time.Now}).stream("stdout")
	var out bytes.Buffer
	for i := 0; i < 200; i++ {
		fmt.Fprintf(&out, "line %d\n", i)
	}
	s.Write(out.Bytes())
	s.Close()
	lf.Close()
	var all []byte
	for _, name := range []string{path + ".2", path + ".1", path} {
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		if len(b) > 1000 || len(b) == 0 || b[len(b)-1] != '\n' {
			t.Errorf("%s: %d bytes, last %q", filepath.Base(name), len(b), b[len(b)-1:])
		}
		all = append(all, b...)
	}
	lines := strings.Split(strings.TrimSuffix(string(all), "\n"), "\n")
	last := lines[len(lines)-1]
	if !strings.HasPrefix(last, `{"log":"line 199\n"`) {
		t.Errorf("last entry %s", last)
	}
	for i, l := range lines {
		if !strings.HasPrefix(l, `{"log":"line `) || !strings.HasSuffix(l, `"}`) {
			t.Fatalf("entry %d torn: %s", i, l)
		}
	}
}
