package daemon

import (
	"testing"

	"github.com/moby/moby/api/types/mount"

	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/volume"
)

func TestParseBindSpec(t *testing.T) {
	for _, tc := range []struct {
		raw  string
		want mountPoint // create is checked by anonymous only
		anon bool
		err  bool
	}{
		{raw: "/host:/c", want: mountPoint{Type: mount.TypeBind, Source: "/host", Destination: "/c", RW: true, Propagation: "rprivate", Own: true}},
		{raw: "/host/:/c:ro,rshared", want: mountPoint{Type: mount.TypeBind, Source: "/host", Destination: "/c", Mode: "ro,rshared", Propagation: "rshared", Own: true}},
		{raw: "data:/c", want: mountPoint{Type: mount.TypeVolume, Name: "data", Destination: "/c", RW: true, Mode: "z"}},
		{raw: "data:/c:ro,nocopy", want: mountPoint{Type: mount.TypeVolume, Name: "data", Destination: "/c", Mode: "ro,nocopy", NoCopy: true}},
		{raw: "/c", want: mountPoint{Type: mount.TypeVolume, Destination: "/c", RW: true}, anon: true},
		{raw: "/host:/c:nocopy", err: true},
		{raw: "data:/c:rshared", err: true},
		{raw: "data:/c:ro,rw", err: true},
		{raw: "data:/c:bogus", err: true},
		{raw: "data:relative", err: true},
		{raw: "bad name:/c", err: true},
		{raw: ":/c", err: true},
		{raw: "a:b:c:d", err: true},
		{raw: "relative", err: true},
	} {
		t.Run(tc.raw, func(t *testing.T) {
			got, err := parseBindSpec(tc.raw)
			if tc.err {
				if !errdefs.IsInvalidArgument(err) {
					t.Fatalf("err = %v, want invalid argument", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.anon {
				if len(got.Name) != 64 || got.create == nil || got.create.Labels[volume.AnonymousLabel] != "" {
					t.Fatalf("anonymous volume: %+v", got)
				}
				if _, ok := got.create.Labels[volume.AnonymousLabel]; !ok {
					t.Fatalf("anonymous volume without its label: %+v", got.create)
				}
				tc.want.Name = got.Name
			}
			got.create = nil
			if got != tc.want {
				t.Fatalf("got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestParseMountSpec(t *testing.T) {
	for _, tc := range []struct {
		name string
		m    mount.Mount
		want mountPoint
		anon bool
		err  bool
	}{
		{name: "volume", m: mount.Mount{Type: mount.TypeVolume, Source: "data", Target: "/c", ReadOnly: true,
			VolumeOptions: &mount.VolumeOptions{NoCopy: true, DriverConfig: &mount.Driver{Options: map[string]string{"type": "tmpfs", "device": "tmpfs"}}}},
			want: mountPoint{Type: mount.TypeVolume, Name: "data", Destination: "/c", NoCopy: true, Mode: "z"}},
		{name: "subpath", m: mount.Mount{Type: mount.TypeVolume, Source: "data", Target: "/c", VolumeOptions: &mount.VolumeOptions{Subpath: "a/b"}},
			want: mountPoint{Type: mount.TypeVolume, Name: "data", Destination: "/c", RW: true, Subpath: "a/b", Mode: "z"}},
		{name: "anonymous", m: mount.Mount{Type: mount.TypeVolume, Target: "/c"}, want: mountPoint{Type: mount.TypeVolume, Destination: "/c", RW: true, Mode: "z"}, anon: true},
		{name: "bind", m: mount.Mount{Type: mount.TypeBind, Source: "/h", Target: "/c", BindOptions: &mount.BindOptions{Propagation: mount.PropagationSlave}},
			want: mountPoint{Type: mount.TypeBind, Source: "/h", Destination: "/c", RW: true, Propagation: "slave", Own: true}},
		{name: "tmpfs", m: mount.Mount{Type: mount.TypeTmpfs, Target: "/c"}, want: mountPoint{Type: mount.TypeTmpfs, Destination: "/c", RW: true, Own: true}},
		{name: "escaping subpath", m: mount.Mount{Type: mount.TypeVolume, Source: "data", Target: "/c", VolumeOptions: &mount.VolumeOptions{Subpath: "../x"}}, err: true},
		{name: "absolute subpath", m: mount.Mount{Type: mount.TypeVolume, Source: "data", Target: "/c", VolumeOptions: &mount.VolumeOptions{Subpath: "/x"}}, err: true},
		{name: "other driver", m: mount.Mount{Type: mount.TypeVolume, Source: "data", Target: "/c", VolumeOptions: &mount.VolumeOptions{DriverConfig: &mount.Driver{Name: "nfs"}}}, err: true},
		{name: "bind options on volume", m: mount.Mount{Type: mount.TypeVolume, Source: "data", Target: "/c", BindOptions: &mount.BindOptions{}}, err: true},
		{name: "relative bind", m: mount.Mount{Type: mount.TypeBind, Source: "h", Target: "/c"}, err: true},
		{name: "no target", m: mount.Mount{Type: mount.TypeVolume, Source: "data"}, err: true},
		{name: "bad name", m: mount.Mount{Type: mount.TypeVolume, Source: "a b", Target: "/c"}, err: true},
		{name: "npipe", m: mount.Mount{Type: mount.TypeNamedPipe, Source: "x", Target: "/c"}, err: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseMountSpec(tc.m)
			if tc.err {
				if !errdefs.IsInvalidArgument(err) {
					t.Fatalf("err = %v, want invalid argument", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.m.Type == mount.TypeVolume && got.create == nil {
				t.Fatalf("volume mount without create options")
			}
			if tc.anon {
				if _, ok := got.create.Labels[volume.AnonymousLabel]; !ok || len(got.Name) != 64 {
					t.Fatalf("anonymous volume: %+v %+v", got, got.create)
				}
				tc.want.Name = got.Name
			}
			if tc.name == "volume" && got.create.Options["type"] != "tmpfs" {
				t.Fatalf("volume-opt lost: %+v", got.create)
			}
			got.create = nil
			if got != tc.want {
				t.Fatalf("got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}
