package mounts

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/moby/moby/api/types/mount"

	"github.com/berth-dev/berth/errdefs"
)

// Each case is what dockerd does with the same -v spec: the Spec it plans, or
// its error class and message.
func TestParseBind(t *testing.T) {
	for _, tc := range []struct {
		raw     string
		want    Spec
		err     error // errdefs class
		message string
	}{
		// Host paths: rbind, read-write and rprivate unless asked; created if missing.
		{raw: "/host:/c", want: Spec{Type: mount.TypeBind, Source: "/host", Target: "/c", Propagation: "rprivate", CreateSource: true}},
		{raw: "/host/./x/:/c/d/", want: Spec{Type: mount.TypeBind, Source: "/host/x", Target: "/c/d", Propagation: "rprivate", CreateSource: true}},
		{raw: "/host:/c:ro", want: Spec{Type: mount.TypeBind, Source: "/host", Target: "/c", ReadOnly: true, Mode: "ro", Propagation: "rprivate", CreateSource: true}},
		{raw: "/host:/c:rw", want: Spec{Type: mount.TypeBind, Source: "/host", Target: "/c", Mode: "rw", Propagation: "rprivate", CreateSource: true}},
		{raw: "/host:/c:ro,rshared", want: Spec{Type: mount.TypeBind, Source: "/host", Target: "/c", ReadOnly: true, Mode: "ro,rshared", Propagation: "rshared", CreateSource: true}},
		{raw: "/host:/c:slave", want: Spec{Type: mount.TypeBind, Source: "/host", Target: "/c", Mode: "slave", Propagation: "slave", CreateSource: true}},
		{raw: "/host:/c:z", want: Spec{Type: mount.TypeBind, Source: "/host", Target: "/c", Mode: "z", Propagation: "rprivate", CreateSource: true}},
		{raw: "/host:/c:Z,ro,cached", want: Spec{Type: mount.TypeBind, Source: "/host", Target: "/c", ReadOnly: true, Mode: "Z,ro,cached", Propagation: "rprivate", CreateSource: true}},
		{raw: "/host:/c:delegated", want: Spec{Type: mount.TypeBind, Source: "/host", Target: "/c", Mode: "delegated", Propagation: "rprivate", CreateSource: true}},
		// Anything but an absolute path names a volume; no source asks for an anonymous one.
		{raw: "data:/c", want: Spec{Type: mount.TypeVolume, Source: "data", Target: "/c"}},
		{raw: "data:/c:ro,nocopy", want: Spec{Type: mount.TypeVolume, Source: "data", Target: "/c", ReadOnly: true, Mode: "ro,nocopy", NoCopy: true}},
		{raw: "data:/c:z", want: Spec{Type: mount.TypeVolume, Source: "data", Target: "/c", Mode: "z"}},
		{raw: "./rel:/c", want: Spec{Type: mount.TypeVolume, Source: "./rel", Target: "/c"}}, // the daemon refuses the name
		{raw: "/c", want: Spec{Type: mount.TypeVolume, Target: "/c"}},
		// Errors, with dockerd's messages.
		{raw: "/host:/c:nocopy", err: errdefs.ErrInvalidArgument,
			message: `invalid volume specification: '/host:/c:nocopy': invalid mount config for type "bind": field VolumeOptions must not be specified`},
		{raw: "data:/c:rshared", err: errdefs.ErrInvalidArgument,
			message: `invalid volume specification: 'data:/c:rshared': invalid mount config for type "volume": field BindOptions must not be specified`},
		{raw: "data:/c:ro,rw", err: errdefs.ErrInvalidArgument, message: "invalid mode: ro,rw"},
		{raw: "/h:/c:shared,slave", err: errdefs.ErrInvalidArgument, message: "invalid mode: shared,slave"},
		{raw: "data:/c:nocopy,nocopy", err: errdefs.ErrInvalidArgument, message: "invalid mode: nocopy,nocopy"},
		{raw: "/h:/c:rx", err: errdefs.ErrInvalidArgument, message: "invalid mode: rx"},
		{raw: "data:/c:bogus", err: errdefs.ErrInvalidArgument, message: "invalid mode: bogus"},
		{raw: "/h:rel", err: errdefs.ErrInvalidArgument,
			message: `invalid volume specification: '/h:rel': invalid mount config for type "bind": invalid mount path: 'rel' mount path must be absolute`},
		{raw: "data:relative", err: errdefs.ErrInvalidArgument,
			message: `invalid volume specification: 'data:relative': invalid mount config for type "volume": invalid mount path: 'relative' mount path must be absolute`},
		{raw: "relative", err: errdefs.ErrInvalidArgument,
			message: `invalid volume specification: 'relative': invalid mount config for type "volume": invalid mount path: 'relative' mount path must be absolute`},
		{raw: "/h:/", err: errdefs.ErrInvalidArgument,
			message: `invalid volume specification: '/h:/': invalid mount config for type "bind": invalid specification: destination can't be '/'`},
		{raw: "data:/.", err: errdefs.ErrInvalidArgument,
			message: `invalid volume specification: 'data:/.': invalid mount config for type "volume": invalid specification: destination can't be '/'`},
		{raw: ":/c", err: errdefs.ErrInvalidArgument, message: "invalid volume specification: ':/c'"},
		{raw: "/h:", err: errdefs.ErrInvalidArgument, message: "invalid volume specification: '/h:'"},
		{raw: "", err: errdefs.ErrInvalidArgument, message: "invalid volume specification: ''"},
		{raw: "a:b:c:d", err: errdefs.ErrInvalidArgument, message: "invalid volume specification: 'a:b:c:d'"},
	} {
		t.Run(tc.raw, func(t *testing.T) {
			got, err := ParseBind(tc.raw)
			checkParse(t, got, err, tc.want, tc.err, tc.message)
		})
	}
}

// Each case is what dockerd does with the same --mount (HostConfig.Mounts entry).
func TestParseMount(t *testing.T) {
	defaults := []string{"noexec", "nosuid", "nodev", "rprivate"}
	for _, tc := range []struct {
		name    string
		m       mount.Mount
		want    Spec
		err     error
		message string
	}{
		{name: "bind", m: mount.Mount{Type: mount.TypeBind, Source: "/h/", Target: "/c"},
			want: Spec{Type: mount.TypeBind, Source: "/h", Target: "/c", Propagation: "rprivate"}},
		{name: "bind readonly non-recursive slave", m: mount.Mount{Type: mount.TypeBind, Source: "/h", Target: "/c", ReadOnly: true,
			BindOptions: &mount.BindOptions{Propagation: mount.PropagationSlave, NonRecursive: true}},
			want: Spec{Type: mount.TypeBind, Source: "/h", Target: "/c", ReadOnly: true, Propagation: "slave", NonRecursive: true}},
		{name: "bind create source", m: mount.Mount{Type: mount.TypeBind, Source: "/h", Target: "/c", BindOptions: &mount.BindOptions{CreateMountpoint: true}},
			want: Spec{Type: mount.TypeBind, Source: "/h", Target: "/c", Propagation: "rprivate", CreateSource: true}},
		{name: "volume", m: mount.Mount{Type: mount.TypeVolume, Source: "data", Target: "/c", ReadOnly: true,
			VolumeOptions: &mount.VolumeOptions{NoCopy: true, Labels: map[string]string{"a": "b"},
				DriverConfig: &mount.Driver{Name: "local", Options: map[string]string{"type": "tmpfs", "device": "tmpfs"}}}},
			want: Spec{Type: mount.TypeVolume, Source: "data", Target: "/c", ReadOnly: true, NoCopy: true, Driver: "local",
				Labels: map[string]string{"a": "b"}, DriverOptions: map[string]string{"type": "tmpfs", "device": "tmpfs"}}},
		{name: "volume subpath", m: mount.Mount{Type: mount.TypeVolume, Source: "data", Target: "/c", VolumeOptions: &mount.VolumeOptions{Subpath: "a/./b/"}},
			want: Spec{Type: mount.TypeVolume, Source: "data", Target: "/c", Subpath: "a/b"}},
		{name: "anonymous volume", m: mount.Mount{Type: mount.TypeVolume, Target: "/c"}, want: Spec{Type: mount.TypeVolume, Target: "/c"}},
		{name: "other driver", m: mount.Mount{Type: mount.TypeVolume, Source: "data", Target: "/c", VolumeOptions: &mount.VolumeOptions{DriverConfig: &mount.Driver{Name: "nfs"}}},
			want: Spec{Type: mount.TypeVolume, Source: "data", Target: "/c", Driver: "nfs"}}, // the daemon refuses it
		{name: "tmpfs", m: mount.Mount{Type: mount.TypeTmpfs, Target: "/t"}, want: Spec{Type: mount.TypeTmpfs, Target: "/t", TmpfsOptions: defaults}},
		{name: "tmpfs size mode exec", m: mount.Mount{Type: mount.TypeTmpfs, Target: "/t",
			TmpfsOptions: &mount.TmpfsOptions{SizeBytes: 1 << 20, Mode: 0o1777 | os.ModeSticky, Options: [][]string{{"exec"}, {"uid", "1000"}}}},
			want: Spec{Type: mount.TypeTmpfs, Target: "/t", TmpfsOptions: []string{"nosuid", "nodev", "rprivate", "mode=1777", "size=1m", "exec", "uid=1000"}}},
		{name: "tmpfs readonly raw mode", m: mount.Mount{Type: mount.TypeTmpfs, Target: "/t", ReadOnly: true, TmpfsOptions: &mount.TmpfsOptions{SizeBytes: 1000, Mode: 0o1770}},
			want: Spec{Type: mount.TypeTmpfs, Target: "/t", ReadOnly: true, TmpfsOptions: []string{"noexec", "nosuid", "nodev", "rprivate", "ro", "mode=1770", "size=1000"}}},
		{name: "tmpfs size in g", m: mount.Mount{Type: mount.TypeTmpfs, Target: "/t", TmpfsOptions: &mount.TmpfsOptions{SizeBytes: 2 << 30}},
			want: Spec{Type: mount.TypeTmpfs, Target: "/t", TmpfsOptions: append(defaults[:4:4], "size=2g")}},

		{name: "no target", m: mount.Mount{Type: mount.TypeVolume, Source: "data"}, err: errdefs.ErrInvalidArgument,
			message: `invalid mount config for type "volume": field Target must not be empty`},
		{name: "relative target", m: mount.Mount{Type: mount.TypeTmpfs, Target: "t"}, err: errdefs.ErrInvalidArgument,
			message: `invalid mount config for type "tmpfs": invalid mount path: 't' mount path must be absolute`},
		{name: "root target", m: mount.Mount{Type: mount.TypeBind, Source: "/h", Target: "/"}, err: errdefs.ErrInvalidArgument,
			message: `invalid mount config for type "bind": invalid specification: destination can't be '/'`},
		{name: "no type", m: mount.Mount{Source: "/h", Target: "/c"}, err: errdefs.ErrInvalidArgument, message: "invalid mount config: mount type must be given"},
		{name: "npipe", m: mount.Mount{Type: mount.TypeNamedPipe, Source: "x", Target: "/c"}, err: errdefs.ErrInvalidArgument,
			message: `invalid mount config: mount type "npipe" is not supported`},
		{name: "bind without source", m: mount.Mount{Type: mount.TypeBind, Target: "/c"}, err: errdefs.ErrInvalidArgument,
			message: `invalid mount config for type "bind": field Source must not be empty`},
		{name: "relative bind", m: mount.Mount{Type: mount.TypeBind, Source: "h", Target: "/c"}, err: errdefs.ErrInvalidArgument,
			message: `invalid mount config for type "bind": invalid mount path: 'h' mount path must be absolute`},
		{name: "bind with volume options", m: mount.Mount{Type: mount.TypeBind, Source: "/h", Target: "/c", VolumeOptions: &mount.VolumeOptions{}},
			err: errdefs.ErrInvalidArgument, message: `invalid mount config for type "bind": field VolumeOptions must not be specified`},
		{name: "bind with tmpfs options", m: mount.Mount{Type: mount.TypeBind, Source: "/h", Target: "/c", TmpfsOptions: &mount.TmpfsOptions{}},
			err: errdefs.ErrInvalidArgument, message: `invalid mount config for type "bind": field TmpfsOptions must not be specified`},
		{name: "bad propagation", m: mount.Mount{Type: mount.TypeBind, Source: "/h", Target: "/c", BindOptions: &mount.BindOptions{Propagation: "sideways"}},
			err: errdefs.ErrInvalidArgument, message: `invalid mount config for type "bind": invalid propagation mode: sideways`},
		{name: "volume with bind options", m: mount.Mount{Type: mount.TypeVolume, Source: "data", Target: "/c", BindOptions: &mount.BindOptions{}},
			err: errdefs.ErrInvalidArgument, message: `invalid mount config for type "volume": field BindOptions must not be specified`},
		{name: "volume with tmpfs options", m: mount.Mount{Type: mount.TypeVolume, Source: "data", Target: "/c", TmpfsOptions: &mount.TmpfsOptions{}},
			err: errdefs.ErrInvalidArgument, message: `invalid mount config for type "volume": field TmpfsOptions must not be specified`},
		{name: "escaping subpath", m: mount.Mount{Type: mount.TypeVolume, Source: "data", Target: "/c", VolumeOptions: &mount.VolumeOptions{Subpath: "a/../../x"}},
			err: errdefs.ErrInvalidArgument, message: `invalid mount config for type "volume": subpath must be a relative path within the volume: a/../../x`},
		{name: "absolute subpath", m: mount.Mount{Type: mount.TypeVolume, Source: "data", Target: "/c", VolumeOptions: &mount.VolumeOptions{Subpath: "/x"}},
			err: errdefs.ErrInvalidArgument, message: `invalid mount config for type "volume": subpath must be a relative path within the volume: /x`},
		{name: "anonymous subpath", m: mount.Mount{Type: mount.TypeVolume, Target: "/c", VolumeOptions: &mount.VolumeOptions{Subpath: "x"}},
			err: errdefs.ErrInvalidArgument, message: `invalid mount config for type "volume": subpath is not supported for anonymous volumes`},
		{name: "tmpfs with source", m: mount.Mount{Type: mount.TypeTmpfs, Source: "x", Target: "/t"}, err: errdefs.ErrInvalidArgument,
			message: `invalid mount config for type "tmpfs": field Source must not be specified`},
		{name: "tmpfs negative size", m: mount.Mount{Type: mount.TypeTmpfs, Target: "/t", TmpfsOptions: &mount.TmpfsOptions{SizeBytes: -1}},
			err: errdefs.ErrInvalidArgument, message: `invalid mount config for type "tmpfs": invalid tmpfs size -1`},
		{name: "tmpfs bad option", m: mount.Mount{Type: mount.TypeTmpfs, Target: "/t", TmpfsOptions: &mount.TmpfsOptions{Options: [][]string{{"a", "b", "c"}}}},
			err: errdefs.ErrInvalidArgument, message: `invalid mount config for type "tmpfs": invalid option [a b c]`},
		{name: "tmpfs unknown option", m: mount.Mount{Type: mount.TypeTmpfs, Target: "/t", TmpfsOptions: &mount.TmpfsOptions{Options: [][]string{{"bogus"}}}},
			err: errdefs.ErrInvalidArgument, message: `tmpfs mount /t: invalid tmpfs option "bogus"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseMount(tc.m)
			checkParse(t, got, err, tc.want, tc.err, tc.message)
		})
	}
}

// Each case is what dockerd does with the same --tmpfs target:options.
func TestParseTmpfs(t *testing.T) {
	for _, tc := range []struct {
		target, options string
		want            []string
		message         string
	}{
		{target: "/run", want: []string{"noexec", "nosuid", "nodev", "rprivate"}},
		{target: "/run/", options: "size=64m,exec,uid=1000", want: []string{"nosuid", "nodev", "rprivate", "size=64m", "exec", "uid=1000"}},
		{target: "/t", options: "size=1m,ro,size=2m", want: []string{"noexec", "nosuid", "nodev", "rprivate", "ro", "size=2m"}},
		{target: "/t", options: "defaults,shared, mode=700", want: []string{"noexec", "nosuid", "nodev", "shared", "mode=700"}},
		{target: "/t", options: "size=1m,bogus", message: `tmpfs mount /t: invalid tmpfs option "bogus"`},
		{target: "/t", options: "colour=red", message: `tmpfs mount /t: invalid tmpfs option "colour=red"`},
		{target: "t", message: `invalid tmpfs mount "t": mount path must be absolute`},
	} {
		t.Run(tc.target+":"+tc.options, func(t *testing.T) {
			got, err := ParseTmpfs(tc.target, tc.options)
			if tc.message != "" {
				checkParse(t, got, err, Spec{}, errdefs.ErrInvalidArgument, tc.message)
				return
			}
			checkParse(t, got, err, Spec{Type: mount.TypeTmpfs, Target: filepath.Clean(tc.target), TmpfsOptions: tc.want}, nil, "")
		})
	}
}

func checkParse(t *testing.T, got Spec, err error, want Spec, wantErr error, message string) {
	t.Helper()
	if wantErr != nil {
		if !errors.Is(err, wantErr) || err.Error() != message {
			t.Fatalf("error %v\nwant %q (%v)", err, message, wantErr)
		}
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got  %+v\nwant %+v", got, want)
	}
}
