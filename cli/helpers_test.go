package cli

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/api/types/network"
)

func TestGetTimestamp(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		in, want string
	}{
		{"10m", "1767322445"},
		{"1h", "1767319445"},
		{"1767322445", "1767322445"},
		{"1767322445.123", "1767322445.123"},
		{"2026-01-02T03:04:05Z", "1767323045.000000000"},
		{"2026-01-02T03:04:05.5+01:00", "1767319445.500000000"},
	}
	for _, tt := range tests {
		got, err := getTimestamp(tt.in, now)
		if err != nil || got != tt.want {
			t.Errorf("getTimestamp(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
	if _, err := getTimestamp("yesterday", now); err == nil {
		t.Errorf("bad value accepted")
	}
}

func TestParseDetachKeys(t *testing.T) {
	tests := map[string][]byte{
		"":              {16, 17},
		"ctrl-p,ctrl-q": {16, 17},
		"ctrl-a,x":      {1, 'x'},
		"ctrl-@":        {0},
		"ctrl-[":        {27},
	}
	for in, want := range tests {
		got, err := parseDetachKeys(in)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%q: got %v %v, want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"ctrl-", "alt-x", "ctrl-1"} {
		if _, err := parseDetachKeys(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestEscapeProxy(t *testing.T) {
	tests := []struct {
		name     string
		in       string
		want     string
		detached bool
	}{
		{"passes plain input", "hello", "hello", false},
		{"detaches on the sequence", "ab\x10\x11cd", "ab", true},
		{"a partial sequence is passed on", "a\x10b", "a\x10b", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := &escapeProxy{r: strings.NewReader(tt.in), keys: []byte{16, 17}}
			got, err := io.ReadAll(p)
			if string(got) != tt.want {
				t.Errorf("read %q, want %q", got, tt.want)
			}
			if errors.Is(err, errDetached) != tt.detached {
				t.Errorf("err %v, detached want %v", err, tt.detached)
			}
		})
	}
}

func TestFormatPortLines(t *testing.T) {
	ports := network.PortMap{
		network.MustParsePort("80/tcp"): {
			{HostIP: netip.MustParseAddr("0.0.0.0"), HostPort: "8080"},
			{HostIP: netip.MustParseAddr("::"), HostPort: "8080"},
		},
		network.MustParsePort("53/udp"): {{HostPort: "5353"}},
		network.MustParsePort("22/tcp"): nil,
	}
	got, err := formatPortLines(ports, nil)
	want := []string{"53/udp -> 0.0.0.0:5353", "80/tcp -> 0.0.0.0:8080", "80/tcp -> [::]:8080"}
	if err != nil || !equalStrings(got, want) {
		t.Errorf("all: %v %v, want %v", got, err, want)
	}
	got, err = formatPortLines(ports, []string{"80"})
	if err != nil || !equalStrings(got, []string{"0.0.0.0:8080", "[::]:8080"}) {
		t.Errorf("80: %v %v", got, err)
	}
	if _, err := formatPortLines(ports, []string{"22"}); err == nil || err.Error() != "Error: No public port '22' published" {
		t.Errorf("22: %v", err)
	}
}

func TestFilterFlag(t *testing.T) {
	var vals []string
	f := newFilterValue(&vals)
	if err := f.Set("status=exited"); err != nil {
		t.Fatal(err)
	}
	if err := f.Set("label=a=b"); err != nil {
		t.Fatal(err)
	}
	if err := f.Set("bad"); err == nil || err.Error() != "bad format of filter (expected name=value)" {
		t.Errorf("bad filter: %v", err)
	}
	got, err := toFilters(vals)
	if err != nil || !got["status"]["exited"] || !got["label"]["a=b"] {
		t.Errorf("filters %v %v", got, err)
	}
}

func TestFormatEvent(t *testing.T) {
	m := events.Message{
		Type: "container", Action: "die", TimeNano: time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC).UnixNano(),
		Actor: events.Actor{ID: "abc", Attributes: map[string]string{"name": "x", "exitCode": "3", "image": "busybox"}},
	}
	got := FormatEvent(m)
	local := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC).Local().Format("2006-01-02T15:04:05.000000000Z07:00")
	want := local + " container die abc (exitCode=3, image=busybox, name=x)"
	if got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestStartErrorStatus(t *testing.T) {
	tests := map[string]int{
		`exec: "x": executable file not found in $PATH`:     127,
		`open /nope: no such file or directory`:             127,
		`exec: "/etc": permission denied`:                   126,
		`read /etc: is a directory`:                         126,
		`OCI runtime create failed: cgroup: invalid config`: 125,
	}
	for msg, want := range tests {
		if got := startErrorStatus(errors.New(msg)); got != want {
			t.Errorf("%q: %d, want %d", msg, got, want)
		}
	}
}

func TestTarRoundTrip(t *testing.T) {
	src := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(src, "dir", "sub"), 0o755))
	must(os.WriteFile(filepath.Join(src, "dir", "a.txt"), []byte("alpha"), 0o640))
	must(os.WriteFile(filepath.Join(src, "dir", "sub", "b.txt"), []byte("beta"), 0o600))
	must(os.Symlink("a.txt", filepath.Join(src, "dir", "link")))

	var buf bytes.Buffer
	must(writeTar(&buf, filepath.Join(src, "dir"), "renamed", false))

	dst := t.TempDir()
	must(extractTar(bytes.NewReader(buf.Bytes()), dst, "renamed", "copy"))
	b, err := os.ReadFile(filepath.Join(dst, "copy", "sub", "b.txt"))
	if err != nil || string(b) != "beta" {
		t.Errorf("sub/b.txt: %q %v", b, err)
	}
	st, err := os.Stat(filepath.Join(dst, "copy", "a.txt"))
	if err != nil || st.Mode().Perm() != 0o640 {
		t.Errorf("a.txt mode: %v %v", st, err)
	}
	if l, err := os.Readlink(filepath.Join(dst, "copy", "link")); err != nil || l != "a.txt" {
		t.Errorf("link: %q %v", l, err)
	}
}

func TestExtractRefusesEscapes(t *testing.T) {
	mk := func(entries ...tar.Header) []byte {
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		for _, h := range entries {
			h := h
			if h.Typeflag == tar.TypeReg {
				h.Size = 1
			}
			if err := tw.WriteHeader(&h); err != nil {
				t.Fatal(err)
			}
			if h.Typeflag == tar.TypeReg {
				_, _ = tw.Write([]byte("x"))
			}
		}
		_ = tw.Close()
		return buf.Bytes()
	}
	tests := []struct {
		name string
		tar  []byte
	}{
		{"dot-dot", mk(tar.Header{Name: "../evil", Typeflag: tar.TypeReg, Mode: 0o644})},
		{"through a symlink", mk(
			tar.Header{Name: "l", Typeflag: tar.TypeSymlink, Linkname: "/tmp"},
			tar.Header{Name: "l/evil", Typeflag: tar.TypeReg, Mode: 0o644},
		)},
		{"hard link outside", mk(tar.Header{Name: "h", Typeflag: tar.TypeLink, Linkname: "../../etc/passwd"})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dst := t.TempDir()
			err := extractTar(bytes.NewReader(tt.tar), dst, "", "")
			if err == nil {
				t.Fatalf("extraction accepted")
			}
			if _, statErr := os.Stat(filepath.Join(filepath.Dir(dst), "evil")); statErr == nil {
				t.Fatalf("file written outside the destination")
			}
		})
	}
}

func TestSplitCpArg(t *testing.T) {
	tests := map[string][2]string{
		"c1:/etc/hosts": {"c1", "/etc/hosts"},
		"/local/a:b":    {"", "/local/a:b"},
		"./x:y":         {"", "./x:y"},
		"file.txt":      {"", "file.txt"},
		"-":             {"", "-"},
		"dir/x:y":       {"", "dir/x:y"},
	}
	for in, want := range tests {
		c, p := splitCpArg(in)
		if c != want[0] || p != want[1] {
			t.Errorf("%q: %q %q", in, c, p)
		}
	}
}

func TestConfigFile(t *testing.T) {
	dir := t.TempDir()
	cf, err := LoadConfigFile(dir)
	if err != nil || cf != (ConfigFile{}) {
		t.Fatalf("missing file: %+v %v", cf, err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(`{"psFormat":"{{.Names}}","detachKeys":"ctrl-a","auths":{}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	cf, err = LoadConfigFile(dir)
	if err != nil || cf.PsFormat != "{{.Names}}" || cf.DetachKeys != "ctrl-a" {
		t.Errorf("config %+v %v", cf, err)
	}
	c := New(strings.NewReader(""), io.Discard, io.Discard)
	c.opts.ConfigDir = dir
	if got := c.detachKeysOr(""); got != "ctrl-a" {
		t.Errorf("detach keys from config: %q", got)
	}
	if got := c.detachKeysOr("ctrl-x"); got != "ctrl-x" {
		t.Errorf("flag must win: %q", got)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(`{bad`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadConfigFile(dir); err == nil {
		t.Errorf("bad json accepted")
	}
}

func TestStatsEntry(t *testing.T) {
	var s container.StatsResponse
	s.ID, s.Name = "9cfe04f016d4aaaaaaaaaaaa", "/s1"
	s.CPUStats.CPUUsage.TotalUsage = 3_000_000
	s.PreCPUStats.CPUUsage.TotalUsage = 1_000_000
	s.CPUStats.SystemUsage = 20_000_000
	s.PreCPUStats.SystemUsage = 10_000_000
	s.CPUStats.OnlineCPUs = 2
	s.MemoryStats = container.MemoryStats{Usage: 3 << 20, Limit: 100 << 20, Stats: map[string]uint64{"total_inactive_file": 1 << 20}}
	s.Networks = map[string]container.NetworkStats{"eth0": {RxBytes: 1500, TxBytes: 648}}
	s.BlkioStats.IoServiceBytesRecursive = []container.BlkioStatEntry{{Op: "Read", Value: 4096}, {Op: "Write", Value: 8192}}
	s.PidsStats.Current = 3
	e := statsEntry("s1", s, true)
	got := []string{e.ID(), e.Name(), e.CPUPerc(), e.MemUsage(), e.MemPerc(), e.NetIO(), e.BlockIO(), e.PIDs()}
	want := []string{"9cfe04f016d4", "s1", "40.00%", "2MiB / 100MiB", "2.00%", "1.5kB / 648B", "4.1kB / 8.19kB", "3"}
	if !equalStrings(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}
