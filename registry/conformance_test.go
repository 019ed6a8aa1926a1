package registry_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/berth-dev/berth/registry"
	"github.com/berth-dev/berth/registry/auth"
	"github.com/berth-dev/berth/registry/storage"
)

// conformanceModule is the OCI distribution-spec conformance suite, pinned.
const conformanceModule = "github.com/opencontainers/distribution-spec/conformance@v0.0.0-20260831232431-97274622c111"

// buildConformance compiles the suite with `go test -c` outside this module
// (its dependencies stay out of go.mod). It skips when it cannot be built.
func buildConformance(t *testing.T) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("go toolchain not found: %v", err)
	}
	dl := exec.Command(goBin, "mod", "download", "-json", conformanceModule)
	dl.Dir = t.TempDir()
	dl.Env = append(os.Environ(), "GOFLAGS=-mod=mod")
	out, err := dl.Output()
	if err != nil {
		t.Skipf("cannot download %s: %v", conformanceModule, err)
	}
	var mod struct{ Dir string }
	if err := json.Unmarshal(out, &mod); err != nil || mod.Dir == "" {
		t.Skipf("cannot locate %s: %v", conformanceModule, err)
	}
	src := filepath.Join(t.TempDir(), "src")
	if err := os.CopyFS(src, os.DirFS(mod.Dir)); err != nil {
		t.Skipf("copy suite source: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "conformance.test")
	build := exec.Command(goBin, "test", "-c", "-o", bin, ".")
	build.Dir = src
	build.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOWORK=off")
	if out, err := build.CombinedOutput(); err != nil {
		t.Skipf("cannot build the conformance suite: %v\n%s", err, out)
	}
	return bin
}

var countRe = regexp.MustCompile(`^\s+(Disabled|Skip|Pass|FAIL|Error|Total)\.*:\s+(\d+)$`)

// runConformance runs the suite against addr and returns its counts.
func runConformance(t *testing.T, bin, addr string, env ...string) map[string]int {
	t.Helper()
	cmd := exec.Command(bin)
	cmd.Dir = t.TempDir()
	cmd.Env = append(os.Environ(),
		"OCI_REGISTRY="+addr,
		"OCI_TLS=disabled",
		"OCI_RESULTS_DIR="+filepath.Join(cmd.Dir, "results"),
		"OCI_API_BLOBS_UPLOAD_CANCEL=true",
		"OCI_API_MANIFESTS_TAG_PARAM=true",
		"OCI_API_BLOBS_DIGEST_HEADER=true",
		"OCI_API_MANIFESTS_DIGEST_HEADER=true",
		// Read by the older ginkgo-based suite; harmless to the current one.
		"OCI_ROOT_URL=http://"+addr,
		"OCI_TEST_PULL=1", "OCI_TEST_PUSH=1",
		"OCI_TEST_CONTENT_DISCOVERY=1", "OCI_TEST_CONTENT_MANAGEMENT=1",
		"OCI_AUTOMATIC_CROSSMOUNT=1",
	)
	cmd.Env = append(cmd.Env, env...)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	runErr := cmd.Run()
	counts := map[string]int{}
	sc := bufio.NewScanner(bytes.NewReader(out.Bytes()))
	for sc.Scan() {
		if m := countRe.FindStringSubmatch(sc.Text()); m != nil {
			counts[m[1]], _ = strconv.Atoi(m[2])
		}
	}
	t.Logf("conformance: %d passed, %d failed, %d errors, %d skipped, %d disabled of %d",
		counts["Pass"], counts["FAIL"], counts["Error"], counts["Skip"], counts["Disabled"], counts["Total"])
	if runErr != nil || counts["FAIL"] != 0 || counts["Error"] != 0 || counts["Pass"] == 0 {
		s := out.String()
		if i := strings.Index(s, "Errors:"); i >= 0 {
			s = s[i:]
		}
		if len(s) > 20000 {
			s = s[:20000]
		}
		t.Fatalf("conformance suite failed (%v):\n%s", runErr, s)
	}
	return counts
}

func TestConformance(t *testing.T) {
	if testing.Short() {
		t.Skip("conformance suite is long; skipped with -short")
	}
	bin := buildConformance(t)

	t.Run("no auth", func(t *testing.T) {
		h, err := registry.New(registry.WithRoot(t.TempDir()), registry.WithAccessLog(false))
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(h)
		t.Cleanup(srv.Close)
		runConformance(t, bin, strings.TrimPrefix(srv.URL, "http://"))
	})

	t.Run("auth", func(t *testing.T) {
		root := t.TempDir()
		store, err := storage.OpenFilesystem(root)
		if err != nil {
			t.Fatal(err)
		}
		a, err := auth.New(filepath.Join(root, "_auth"), "berth-registry", func(ctx context.Context, repo string) bool {
			v, _ := store.GetVisibility(ctx, repo)
			return v == storage.Public
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := a.Users.Add("conformance", "s3cret-pass"); err != nil {
			t.Fatal(err)
		}
		h, err := registry.New(registry.WithStore(store), registry.WithAuth(a), registry.WithAccessLog(false))
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(h)
		t.Cleanup(srv.Close)
		runConformance(t, bin, strings.TrimPrefix(srv.URL, "http://"),
			"OCI_USERNAME=conformance", "OCI_PASSWORD=s3cret-pass",
			"OCI_REPO1=conformance/repo1", "OCI_REPO2=conformance/repo2",
			"OCI_NAMESPACE=conformance/repo1", "OCI_CROSSMOUNT_NAMESPACE=conformance/repo2",
		)
	})
}
