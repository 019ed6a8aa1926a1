package daemon

import (
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/berth-dev/berth/container"
	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/metadata"
	api "github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
)

func TestParseLink(t *testing.T) {
	for _, c := range []struct {
		in, name, alias, err string
	}{
		{in: "db", name: "db", alias: "db"},
		{in: "db:database", name: "db", alias: "database"},
		{in: "/db:/web/database", name: "db", alias: "database"},
		{in: "/db", name: "db", alias: "db"},
		{in: "db:x", name: "db", alias: "x"},
		{in: "", err: "empty string specified for links"},
		{in: "a:b:c", err: "bad format for links: a:b:c"},
		{in: ":x", err: "bad format for links: :x"},
		{in: "db:", err: "bad format for links: db:"},
		{in: "db:bad alias", err: `invalid link alias "bad alias"`},
	} {
		name, alias, err := parseLink(c.in)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) || !errdefs.IsInvalidArgument(err) {
				t.Errorf("parseLink(%q) = %v, want InvalidArgument %q", c.in, err, c.err)
			}
			continue
		}
		if err != nil || name != c.name || alias != c.alias {
			t.Errorf("parseLink(%q) = %q, %q, %v; want %q, %q", c.in, name, alias, err, c.name, c.alias)
		}
	}
}

func ports(specs ...string) []network.Port {
	var out []network.Port
	for _, s := range specs {
		out = append(out, network.MustParsePort(s))
	}
	return out
}

func TestLinkEnv(t *testing.T) {
	ip := netip.MustParseAddr("172.17.0.2")
	for _, c := range []struct {
		what  string
		name  string
		env   []string
		ports []network.Port
		want  []string
	}{
		{"no ports, env minus HOME and PATH", "/web/db", []string{"PATH=/bin", "HOME=/root", "PASSWORD=x=y", "BROKEN"}, nil,
			[]string{"DB_NAME=/web/db", "DB_ENV_PASSWORD=x=y"}},
		{"one port", "/web/database", nil, ports("5432/tcp"), []string{
			"DATABASE_PORT=tcp://172.17.0.2:5432",
			"DATABASE_PORT_5432_TCP=tcp://172.17.0.2:5432",
			"DATABASE_PORT_5432_TCP_ADDR=172.17.0.2",
			"DATABASE_PORT_5432_TCP_PORT=5432",
			"DATABASE_PORT_5432_TCP_PROTO=tcp",
			"DATABASE_NAME=/web/database",
		}},
		{"dashes become underscores, tcp first", "/web/my-db", nil, ports("53/udp", "8080/tcp"), []string{
			"MY_DB_PORT=tcp://172.17.0.2:8080",
			"MY_DB_PORT_8080_TCP=tcp://172.17.0.2:8080",
			"MY_DB_PORT_8080_TCP_ADDR=172.17.0.2",
			"MY_DB_PORT_8080_TCP_PORT=8080",
			"MY_DB_PORT_8080_TCP_PROTO=tcp",
			"MY_DB_PORT_53_UDP=udp://172.17.0.2:53",
			"MY_DB_PORT_53_UDP_ADDR=172.17.0.2",
			"MY_DB_PORT_53_UDP_PORT=53",
			"MY_DB_PORT_53_UDP_PROTO=udp",
			"MY_DB_NAME=/web/my-db",
		}},
		{"a run of ports gets START and END", "/w/a", nil, ports("81/tcp", "80/tcp"), []string{
			"A_PORT=tcp://172.17.0.2:80",
			"A_PORT_80_TCP=tcp://172.17.0.2:80",
			"A_PORT_80_TCP_ADDR=172.17.0.2",
			"A_PORT_80_TCP_PORT=80",
			"A_PORT_80_TCP_PROTO=tcp",
			"A_PORT_81_TCP=tcp://172.17.0.2:81",
			"A_PORT_81_TCP_ADDR=172.17.0.2",
			"A_PORT_81_TCP_PORT=81",
			"A_PORT_81_TCP_PROTO=tcp",
			"A_PORT_80_TCP_START=tcp://172.17.0.2:80",
			"A_PORT_80_TCP_PORT_START=80",
			"A_PORT_80_TCP_END=tcp://172.17.0.2:81",
			"A_PORT_80_TCP_PORT_END=81",
			"A_NAME=/w/a",
		}},
	} {
		if got := linkEnv(c.name, ip, c.env, c.ports); !slices.Equal(got, c.want) {
			t.Errorf("%s:\n got %q\nwant %q", c.what, got, c.want)
		}
	}
}

func TestRegisterLinks(t *testing.T) {
	db, err := metadata.Open(filepath.Join(t.TempDir(), "metadata.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	store, err := container.NewStore(db)
	if err != nil {
		t.Fatal(err)
	}
	add := func(id, name string, mode api.NetworkMode) {
		c := &container.Container{ID: strings.Repeat(id, 64), Name: name, Config: &api.Config{}, HostConfig: &api.HostConfig{NetworkMode: mode}}
		if err := store.Add(c); err != nil {
			t.Fatal(err)
		}
	}
	add("a", "/db", "bridge")
	add("b", "/hostnet", "host")
	add("c", "/joined", api.NetworkMode("container:"+strings.Repeat("b", 64)))
	d := &Daemon{Containers: store}
	for _, c := range []struct {
		what  string
		mode  api.NetworkMode
		links []string
		want  []string
		err   string
	}{
		{"alias", "bridge", []string{"db:database"}, []string{"/db:/web/database"}, ""},
		{"no alias, by id prefix", "bridge", []string{"aaaa"}, []string{"/db:/web/aaaa"}, ""},
		{"stored form again", "bridge", []string{"/db:/web/database"}, []string{"/db:/web/database"}, ""},
		{"first of an alias wins", "bridge", []string{"db:x", "db:x"}, []string{"/db:/web/x"}, ""},
		{"user network", "mynet", []string{"db"}, []string{"/db:/web/db"}, ""},
		{"missing", "bridge", []string{"nope:x"}, nil, "could not get container for nope: No such container: nope"},
		{"itself", "bridge", []string{"web:me"}, nil, "could not link container /web to itself"},
		{"linked is on host network", "bridge", []string{"hostnet"}, nil, "conflicting options: host type networking can't be used with links"},
		{"linked joins a host-network container", "bridge", []string{"joined"}, nil, "conflicting options: host type networking can't be used with links"},
		{"host", "host", []string{"db"}, nil, "conflicting options: host type networking can't be used with links. This would result in undefined behavior"},
		{"container", "container:db", []string{"db"}, nil, "conflicting options: container type network can't be used with links"},
		{"none", "none", []string{"db"}, nil, "conflicting options: none type network can't be used with links"},
	} {
		c2 := &container.Container{ID: strings.Repeat("f", 64), Name: "/web", Config: &api.Config{},
			HostConfig: &api.HostConfig{NetworkMode: c.mode, Links: slices.Clone(c.links)}}
		err := d.registerLinks(c2)
		if c.err != "" {
			// Never a NotFound: the docker CLI would take it for a missing image and pull.
			if err == nil || !strings.Contains(err.Error(), c.err) || !errdefs.IsInvalidArgument(err) {
				t.Errorf("%s: err %v, want InvalidArgument %q", c.what, err, c.err)
			}
			continue
		}
		if err != nil || !slices.Equal(c2.HostConfig.Links, c.want) {
			t.Errorf("%s: links %q err %v, want %q", c.what, c2.HostConfig.Links, err, c.want)
		}
	}
}

func TestContainerRemoveLink(t *testing.T) {
	db, err := metadata.Open(filepath.Join(t.TempDir(), "metadata.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	store, err := container.NewStore(db)
	if err != nil {
		t.Fatal(err)
	}
	web := &container.Container{ID: strings.Repeat("a", 64), Name: "/web", Config: &api.Config{},
		HostConfig: &api.HostConfig{Links: []string{"/db:/web/database", "/cache:/web/cache"}}}
	if err := store.Add(web); err != nil {
		t.Fatal(err)
	}
	d := &Daemon{Containers: store}
	for _, c := range []struct {
		ref   string
		left  []string
		class func(error) bool
		err   string
	}{
		{"web", nil, errdefs.IsInvalidArgument, "cannot remove the default link name"},
		{"nobody/database", nil, errdefs.IsNotFound, "No such container: nobody/database"},
		{"web/nolink", nil, errdefs.IsNotFound, "No such container: web/nolink"},
		{"/web/database", []string{"/cache:/web/cache"}, nil, ""},
		{"web/database", nil, errdefs.IsNotFound, "No such container: web/database"},
		{"web/cache", []string{}, nil, ""},
	} {
		err := d.ContainerRemoveLink(t.Context(), c.ref)
		if c.err != "" {
			if err == nil || !c.class(err) || !strings.Contains(err.Error(), c.err) {
				t.Errorf("rm --link %s: %v, want %q", c.ref, err, c.err)
			}
			continue
		}
		if err != nil || !slices.Equal(web.HostConfig.Links, c.left) {
			t.Errorf("rm --link %s: links %q err %v, want %q", c.ref, web.HostConfig.Links, err, c.left)
		}
	}
}
