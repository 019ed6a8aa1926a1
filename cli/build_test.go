package cli

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

func tarNames(t *testing.T, r io.Reader) map[string]string {
	t.Helper()
	out := map[string]string{}
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		out[h.Name] = string(b)
	}
}

func keys(m map[string]string) []string {
	var k []string
	for n := range m {
		k = append(k, n)
	}
	sort.Strings(k)
	return k
}

func TestContextFromDir(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{
		"Dockerfile":        "FROM scratch\n",
		".dockerignore":     "*.log\nsecret\nbuild/*\n!build/keep\n",
		"app.go":            "package main\n",
		"debug.log":         "noise",
		"secret/key":        "k",
		"build/out.bin":     "bin",
		"build/keep":        "kept",
		"docs/Dockerfile.x": "FROM scratch\n",
	}
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	r, name, err := contextFromDir(dir, "", nil)
	if err != nil || name != "Dockerfile" {
		t.Fatalf("contextFromDir: %q %v", name, err)
	}
	got := tarNames(t, r)
	want := []string{".dockerignore", "Dockerfile", "app.go", "build/", "build/keep", "docs/", "docs/Dockerfile.x"}
	if k := keys(got); strings.Join(k, ",") != strings.Join(want, ",") {
		t.Errorf("context holds %v, want %v", k, want)
	}

	// a Dockerfile inside the context is named by its path there
	_, name, err = contextFromDir(dir, filepath.Join(dir, "docs", "Dockerfile.x"), nil)
	if err != nil || name != "docs/Dockerfile.x" {
		t.Errorf("inside -f: %q %v", name, err)
	}

	// one outside the context is added to it
	outside := filepath.Join(t.TempDir(), "Dockerfile.other")
	if err := os.WriteFile(outside, []byte("FROM busybox\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r, name, err = contextFromDir(dir, outside, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := tarNames(t, r); got[name] != "FROM busybox\n" {
		t.Errorf("outside Dockerfile %q missing from %v", name, keys(got))
	}

	if _, _, err := contextFromDir(dir, filepath.Join(dir, "nope"), nil); err == nil {
		t.Errorf("missing Dockerfile accepted")
	}
}

func TestContextFromStdin(t *testing.T) {
	r, name, err := contextFromStdin(strings.NewReader("FROM busybox\nRUN true\n"))
	if err != nil || name != "Dockerfile" {
		t.Fatalf("%q %v", name, err)
	}
	if got := tarNames(t, r); got["Dockerfile"] != "FROM busybox\nRUN true\n" {
		t.Errorf("got %v", got)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	_ = tw.WriteHeader(&tar.Header{Name: "Dockerfile", Mode: 0o644, Size: 5, Typeflag: tar.TypeReg})
	_, _ = tw.Write([]byte("FROM "))
	_ = tw.Close()
	r, name, err = contextFromStdin(bytes.NewReader(buf.Bytes()))
	if err != nil || name != "" {
		t.Fatalf("tar: %q %v", name, err)
	}
	if b, _ := io.ReadAll(r); !bytes.Equal(b, buf.Bytes()) {
		t.Errorf("tar context changed on the way")
	}
}

func TestBuildArgsMap(t *testing.T) {
	t.Setenv("BERTH_BUILD_FROM_ENV", "env-value")
	m := buildArgsMap([]string{"A=1", "EMPTY=", "BERTH_BUILD_FROM_ENV", "BERTH_BUILD_UNSET_X"})
	if m["A"] == nil || *m["A"] != "1" || m["EMPTY"] == nil || *m["EMPTY"] != "" {
		t.Errorf("explicit values: %v", m)
	}
	if v := m["BERTH_BUILD_FROM_ENV"]; v == nil || *v != "env-value" {
		t.Errorf("from env: %v", v)
	}
	if v, ok := m["BERTH_BUILD_UNSET_X"]; !ok || v != nil {
		t.Errorf("unset must be sent as null: %v %v", v, ok)
	}
}
