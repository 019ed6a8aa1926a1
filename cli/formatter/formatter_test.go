package formatter

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/image"
)

func TestDisplayablePorts(t *testing.T) {
	any4 := netip.MustParseAddr("0.0.0.0")
	any6 := netip.MustParseAddr("::")
	tests := []struct {
		name  string
		ports []container.PortSummary
		want  string
	}{
		{"none", nil, ""},
		{"exposed only", []container.PortSummary{{PrivatePort: 80, Type: "tcp"}}, "80/tcp"},
		{"published same port", []container.PortSummary{{IP: any4, PrivatePort: 8080, PublicPort: 8080, Type: "tcp"}}, "0.0.0.0:8080->8080/tcp"},
		{"published other port", []container.PortSummary{{IP: any4, PrivatePort: 80, PublicPort: 8080, Type: "tcp"}}, "0.0.0.0:8080->80/tcp"},
		{"ipv6", []container.PortSummary{{IP: any6, PrivatePort: 80, PublicPort: 8080, Type: "tcp"}}, "[::]:8080->80/tcp"},
		{"range grouped", []container.PortSummary{
			{PrivatePort: 9001, Type: "udp"}, {PrivatePort: 9000, Type: "udp"}, {PrivatePort: 9002, Type: "udp"},
		}, "9000-9002/udp"},
		{"gap splits", []container.PortSummary{{PrivatePort: 1, Type: "tcp"}, {PrivatePort: 3, Type: "tcp"}}, "1/tcp, 3/tcp"},
		{"mixed", []container.PortSummary{
			{IP: any4, PrivatePort: 80, PublicPort: 8080, Type: "tcp"}, {PrivatePort: 443, Type: "tcp"},
		}, "443/tcp, 0.0.0.0:8080->80/tcp"},
	}
	for _, tt := range tests {
		if got := DisplayablePorts(tt.ports); got != tt.want {
			t.Errorf("%s: got %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestEllipsisAndTruncateID(t *testing.T) {
	tests := []struct {
		in   string
		max  int
		want string
	}{
		{"sleep 100", 20, "sleep 100"},
		{"sh -c 'echo out; echo err >&2; exit 3'", 20, "sh -c 'echo out; ec…"},
		{"abc", 1, "a"},
		{"abc", 0, ""},
		{"héllo wörld", 5, "héll…"},
	}
	for _, tt := range tests {
		if got := Ellipsis(tt.in, tt.max); got != tt.want {
			t.Errorf("Ellipsis(%q,%d) = %q, want %q", tt.in, tt.max, got, tt.want)
		}
	}
	if got := TruncateID("sha256:047987520bbb7494499cde5086139ba13afdd"); got != "047987520bbb" {
		t.Errorf("TruncateID = %q", got)
	}
}

func TestHumanAgo(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	tests := map[time.Duration]string{
		0:                   "Less than a second ago",
		2 * time.Second:     "2 seconds ago",
		time.Minute:         "About a minute ago",
		5 * time.Minute:     "5 minutes ago",
		3 * time.Hour:       "3 hours ago",
		50 * time.Hour:      "2 days ago",
		24 * 14 * time.Hour: "2 weeks ago",
	}
	for d, want := range tests {
		if got := HumanAgo(now.Add(-d), now); got != want {
			t.Errorf("%v: got %q, want %q", d, got, want)
		}
	}
}

func TestContainerTable(t *testing.T) {
	now := time.Unix(1_000_100, 0)
	rows := []any{
		&ContainerContext{Trunc: true, Now: now, C: container.Summary{
			ID: "8c720528c47e16ebe6454f68d6600c6f72683a47d17478931a31acafbb024a10", Names: []string{"/x1"},
			Image: "busybox", Command: "sleep 100", Created: 1_000_098, Status: "Up 2 seconds",
		}},
		&ContainerContext{Trunc: true, Now: now, C: container.Summary{
			ID: "ab105039932d75895fd02e35a6f3d3c4d4f63bb069a809098e55e89d5eeed853", Names: []string{"/reverent_ptolemy"},
			Image: "busybox", Command: "sh -c 'echo out; echo err >&2; exit 3'", Created: 1_000_095, Status: "Exited (3) 4 seconds ago",
			Ports: []container.PortSummary{{PrivatePort: 80, Type: "tcp"}},
		}},
	}
	var buf bytes.Buffer
	if err := Write(&buf, ContainerTableFormat, ContainerHeaders, rows); err != nil {
		t.Fatal(err)
	}
	want := `CONTAINER ID   IMAGE     COMMAND                  CREATED         STATUS                     PORTS     NAMES
8c720528c47e   busybox   "sleep 100"              2 seconds ago   Up 2 seconds                         x1
ab105039932d   busybox   "sh -c 'echo out; ec…"   5 seconds ago   Exited (3) 4 seconds ago   80/tcp    reverent_ptolemy
`
	if buf.String() != want {
		t.Errorf("got\n%s\nwant\n%s", buf.String(), want)
	}

	buf.Reset()
	if err := Write(&buf, "{{.Names}}:{{.Status}}", ContainerHeaders, rows[:1]); err != nil {
		t.Fatal(err)
	}
	if buf.String() != "x1:Up 2 seconds\n" {
		t.Errorf("raw template: %q", buf.String())
	}

	buf.Reset()
	if err := Write(&buf, "json", ContainerHeaders, rows[:1]); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(buf.String(), `{"Command":"\"sleep 100\"","CreatedAt":`) || !strings.Contains(buf.String(), `"Names":"x1"`) {
		t.Errorf("json: %s", buf.String())
	}

	buf.Reset()
	err := Write(&buf, "{{.Foo}}", ContainerHeaders, rows[:1])
	if err == nil || !strings.HasPrefix(err.Error(), "failed to execute template: template: :1:2: executing \"\" at <.Foo>: can't evaluate field Foo") {
		t.Errorf("bad field: %v", err)
	}
}

func TestImageRowsAndTable(t *testing.T) {
	now := time.Unix(2_000_000, 0)
	imgs := []image.Summary{
		{ID: "sha256:047987520bbb7494499cde5086139ba13afdd4334d58d8dc20827c6501eb784a", RepoTags: []string{"busybox:latest", "localhost:5000/team/bb:v1"},
			RepoDigests: []string{"localhost:5000/team/bb@sha256:aaaa"}, Created: 2_000_000 - 7*60, Size: 1_984_000},
		{ID: "sha256:1111111111112222222222223333333333", Created: 2_000_000 - 3*3600, Size: 0},
	}
	var buf bytes.Buffer
	if err := Write(&buf, ImageTableFormat, ImageHeaders, ImageRows(imgs, true, false, now)); err != nil {
		t.Fatal(err)
	}
	want := `REPOSITORY              TAG       IMAGE ID       CREATED         SIZE
busybox                 latest    047987520bbb   7 minutes ago   1.98MB
localhost:5000/team/bb  v1        047987520bbb   7 minutes ago   1.98MB
<none>                  <none>    111111111111   3 hours ago     0B
`
	// tabwriter pads with at least 3 spaces
	want = strings.ReplaceAll(want, "localhost:5000/team/bb  v1", "localhost:5000/team/bb   v1")
	want = strings.ReplaceAll(want, "REPOSITORY              TAG", "REPOSITORY               TAG")
	want = strings.ReplaceAll(want, "busybox                 latest", "busybox                  latest")
	want = strings.ReplaceAll(want, "<none>                  <none>", "<none>                   <none>")
	if buf.String() != want {
		t.Errorf("got\n%s\nwant\n%s", buf.String(), want)
	}

	buf.Reset()
	if err := Write(&buf, ImageTableFormatDigests, ImageHeaders, ImageRows(imgs[:1], true, true, now)); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "v1        sha256:aaaa") {
		t.Errorf("digest column missing:\n%s", buf.String())
	}
}

func TestSplitRepoTag(t *testing.T) {
	tests := map[string][2]string{
		"busybox:latest":        {"busybox", "latest"},
		"localhost:5000/a/b:v1": {"localhost:5000/a/b", "v1"},
		"localhost:5000/a/b":    {"localhost:5000/a/b", "<none>"},
		"<none>:<none>":         {"<none>", "<none>"},
	}
	for in, want := range tests {
		r, tag := splitRepoTag(in)
		if r != want[0] || tag != want[1] {
			t.Errorf("%s: got %s %s", in, r, tag)
		}
	}
}

func TestNaturalLess(t *testing.T) {
	tests := []struct {
		a, b string
		want bool
	}{
		{"web2", "web10", true},
		{"web10", "web2", false},
		{"6a07", "34e1", true},
		{"abc", "abd", true},
		{"ab", "abc", true},
		{"a01", "a1", false},
		{"a1", "a01", true},
		{"same", "same", false},
	}
	for _, tt := range tests {
		if got := NaturalLess(tt.a, tt.b); got != tt.want {
			t.Errorf("NaturalLess(%q, %q) = %v", tt.a, tt.b, got)
		}
	}
}
