package formatter

import (
	"encoding/json"
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/docker/go-units"
	"github.com/moby/moby/api/types/container"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Default table layouts, as docker's.
const (
	ContainerTableFormat     = "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}"
	ContainerTableFormatSize = ContainerTableFormat + "\t{{.Size}}"
	QuietIDFormat            = "{{.ID}}"
)

// ContainerHeaders are the column titles of `ps`.
var ContainerHeaders = map[string]string{
	"ID": "CONTAINER ID", "Image": "IMAGE", "Command": "COMMAND", "CreatedAt": "CREATED AT",
	"RunningFor": "CREATED", "Status": "STATUS", "Ports": "PORTS", "Names": "NAMES", "Size": "SIZE",
	"Labels": "LABELS", "Mounts": "MOUNTS", "Networks": "NETWORKS", "State": "STATE",
	"LocalVolumes": "LOCAL VOLUMES", "Platform": "PLATFORM",
}

// ContainerContext is one `ps` row; its methods are the template fields.
type ContainerContext struct {
	C     container.Summary
	Trunc bool
	Now   time.Time
}

// ID is the container id, short unless --no-trunc.
func (c *ContainerContext) ID() string {
	if c.Trunc {
		return TruncateID(c.C.ID)
	}
	return c.C.ID
}

// Names lists the container's names without the leading "/" (link names hidden unless --no-trunc).
func (c *ContainerContext) Names() string {
	var names []string
	for _, n := range c.C.Names {
		n = strings.TrimPrefix(n, "/")
		if c.Trunc && strings.Contains(n, "/") {
			continue
		}
		names = append(names, n)
	}
	return strings.Join(names, ",")
}

// Image is the image as the user named it; digests and image ids shortened unless --no-trunc.
func (c *ContainerContext) Image() string {
	img := c.C.Image
	if img == "" {
		return "<no image>"
	}
	if !c.Trunc {
		return img
	}
	if strings.HasPrefix(img, "sha256:") || (c.C.ImageID != "" && strings.TrimPrefix(c.C.ImageID, "sha256:") == img) {
		return TruncateID(img)
	}
	if i := strings.Index(img, "@"); i > 0 {
		return img[:i]
	}
	return img
}

// Command is the quoted command line, cut at 20 characters unless --no-trunc.
func (c *ContainerContext) Command() string {
	cmd := c.C.Command
	if c.Trunc {
		cmd = Ellipsis(cmd, 20)
	}
	return strconv.Quote(cmd)
}

// CreatedAt is the creation time in Go's default layout.
func (c *ContainerContext) CreatedAt() string {
	return time.Unix(c.C.Created, 0).String()
}

// RunningFor is how long ago the container was created ("2 seconds ago").
func (c *ContainerContext) RunningFor() string {
	return HumanAgo(time.Unix(c.C.Created, 0), c.Now)
}

// Status is the daemon's human status ("Up 3 seconds").
func (c *ContainerContext) Status() string { return c.C.Status }

// State is the machine state ("running").
func (c *ContainerContext) State() string { return string(c.C.State) }

// Ports renders published and exposed ports like docker.
func (c *ContainerContext) Ports() string { return DisplayablePorts(c.C.Ports) }

// Platform is the platform of the image the container runs, when the daemon reports it.
func (c *ContainerContext) Platform() *ocispec.Platform {
	if d := c.C.ImageManifestDescriptor; d != nil {
		return d.Platform
	}
	return nil
}

// Size is "rw (virtual total)".
func (c *ContainerContext) Size() string {
	srw := units.HumanSizeWithPrecision(float64(c.C.SizeRw), 3)
	if c.C.SizeRootFs > 0 {
		return fmt.Sprintf("%s (virtual %s)", srw, units.HumanSizeWithPrecision(float64(c.C.SizeRootFs), 3))
	}
	return srw
}

// Labels is "k=v,k2=v2".
func (c *ContainerContext) Labels() string { return joinLabels(c.C.Labels) }

// Label returns one label's value.
func (c *ContainerContext) Label(name string) string { return c.C.Labels[name] }

// Mounts lists mount names (volumes) or sources.
func (c *ContainerContext) Mounts() string {
	var out []string
	for _, m := range c.C.Mounts {
		name := m.Name
		if name == "" {
			name = m.Source
		}
		if c.Trunc {
			name = Ellipsis(name, 15)
		}
		out = append(out, name)
	}
	return strings.Join(out, ",")
}

// LocalVolumes counts local-driver volumes.
func (c *ContainerContext) LocalVolumes() string {
	n := 0
	for _, m := range c.C.Mounts {
		if m.Driver == "local" {
			n++
		}
	}
	return strconv.Itoa(n)
}

// Networks lists network names.
func (c *ContainerContext) Networks() string {
	if c.C.NetworkSettings == nil {
		return ""
	}
	var out []string
	for k := range c.C.NetworkSettings.Networks {
		out = append(out, k)
	}
	sort.Strings(out)
	return strings.Join(out, ",")
}

func joinLabels(m map[string]string) string {
	var out []string
	for k, v := range m {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return strings.Join(out, ",")
}

// HumanAgo is docker's "<duration> ago" for t seen at now.
func HumanAgo(t, now time.Time) string {
	return units.HumanDuration(now.Sub(t)) + " ago"
}

// DisplayablePorts renders a container's ports as `ps` does: consecutive ports grouped into ranges,
// published ports as "ip:host->container/proto".
func DisplayablePorts(ports []container.PortSummary) string {
	type group struct{ first, last uint16 }
	groups := map[string]*group{}
	var keys, result, hostMappings []string
	sorted := append([]container.PortSummary(nil), ports...)
	sort.Slice(sorted, func(i, j int) bool { return comparePorts(sorted[i], sorted[j]) })
	for _, p := range sorted {
		cur := p.PrivatePort
		key := p.Type
		if p.IP.IsValid() {
			if p.PublicPort != cur {
				hp := net.JoinHostPort(p.IP.String(), strconv.Itoa(int(p.PublicPort)))
				hostMappings = append(hostMappings, fmt.Sprintf("%s->%d/%s", hp, p.PrivatePort, p.Type))
				continue
			}
			key = p.IP.String() + "/" + p.Type
		}
		g := groups[key]
		if g == nil {
			groups[key] = &group{first: cur, last: cur}
			keys = append(keys, key)
			continue
		}
		if cur == g.last+1 {
			g.last = cur
			continue
		}
		result = append(result, formGroup(key, g.first, g.last))
		groups[key] = &group{first: cur, last: cur}
	}
	for _, k := range keys {
		g := groups[k]
		result = append(result, formGroup(k, g.first, g.last))
	}
	result = append(result, hostMappings...)
	return strings.Join(result, ", ")
}

func formGroup(key string, first, last uint16) string {
	ip, proto, hasIP := strings.Cut(key, "/")
	if !hasIP {
		proto, ip = ip, ""
	}
	g := strconv.Itoa(int(first))
	if first != last {
		g = fmt.Sprintf("%s-%d", g, last)
	}
	if ip != "" {
		g = fmt.Sprintf("%s:%s->%s", ip, g, g)
	}
	return g + "/" + proto
}

func comparePorts(a, b container.PortSummary) bool {
	if a.PrivatePort != b.PrivatePort {
		return a.PrivatePort < b.PrivatePort
	}
	if a.IP != b.IP {
		return a.IP.Less(b.IP)
	}
	if a.PublicPort != b.PublicPort {
		return a.PublicPort < b.PublicPort
	}
	return a.Type < b.Type
}

// MarshalJSON renders the row as its template fields, so {{json .}} prints what docker prints.
func (c *ContainerContext) MarshalJSON() ([]byte, error) { return json.Marshal(FieldMap(c)) }
