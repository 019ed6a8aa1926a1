package integration

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/berth-dev/berth/internal/testutil"
)

var hex64 = regexp.MustCompile(`^[0-9a-f]{64}$`)

// volumeImage commits a busybox container whose /data holds files with
// their own owners and modes, and declares VOLUME /data.
func volumeImage(t *testing.T, d *testutil.Daemon, ref string) {
	t.Helper()
	must(t, d.Berth("run", "--name", ref+"-base", "busybox", "sh", "-c",
		"mkdir -p /data/sub && echo hello > /data/f && chown 1234:5678 /data/f && chmod 640 /data/f && "+
			"ln -s f /data/link && chown 1234:99 /data && chmod 750 /data"))
	must(t, d.Berth("commit", "-c", "VOLUME /data", ref+"-base", ref))
	must(t, d.Berth("rm", ref+"-base"))
}

type volumeJSON struct {
	Name, Driver, Mountpoint, CreatedAt, Scope string
	Labels, Options                            map[string]string
}

func inspectVolume(t *testing.T, run func(...string) testutil.Result, name string) volumeJSON {
	t.Helper()
	var vs []volumeJSON
	r := must(t, run("volume", "inspect", name))
	if err := json.Unmarshal([]byte(r.Stdout), &vs); err != nil || len(vs) != 1 {
		t.Fatalf("volume inspect %s: %v\n%s", name, err, r.Stdout)
	}
	return vs[0]
}

func lines(s string) []string { return strings.Fields(strings.TrimSpace(s)) }

func TestVolumeLifecycle(t *testing.T) {
	d := newDaemon(t)
	for _, c := range clis(t, d) {
		t.Run(c.name, func(t *testing.T) {
			vol, other := c.name+"-data", c.name+"-other"
			if got := strings.TrimSpace(must(t, c.run("volume", "create", "--label", "team=a", vol)).Stdout); got != vol {
				t.Fatalf("create printed %q", got)
			}
			must(t, c.run("volume", "create", "-d", "local", "--name", other, "-o", "type=tmpfs", "-o", "device=tmpfs", "-o", "o=size=4m"))
			v := inspectVolume(t, c.run, vol)
			if v.Driver != "local" || v.Scope != "local" || v.Labels["team"] != "a" || v.CreatedAt == "" ||
				v.Mountpoint != filepath.Join(d.DataRoot, "volumes", vol, "_data") {
				t.Fatalf("inspect: %+v", v)
			}
			if o := inspectVolume(t, c.run, other).Options; o["type"] != "tmpfs" || o["o"] != "size=4m" {
				t.Fatalf("options: %v", o)
			}
			if r := c.run("volume", "create", "-o", "colour=red", c.name+"-bad"); r.ExitCode == 0 || !strings.Contains(r.Stderr, "invalid option: \"colour\"") {
				t.Fatalf("bad driver option accepted: %s", r)
			}
			if r := c.run("volume", "create", "a/b"); r.ExitCode == 0 || !strings.Contains(r.Stderr, "includes invalid characters") {
				t.Fatalf("bad name accepted: %s", r)
			}

			// Data written by one container is there for the next.
			must(t, c.run("run", "--rm", "-v", vol+":/data", "busybox", "sh", "-c", "echo kept > /data/file"))
			if r := must(t, c.run("run", "--rm", "-v", vol+":/data:ro", "busybox", "cat", "/data/file")); r.Stdout != "kept\n" {
				t.Fatalf("data did not persist: %s", r)
			}
			// :ro and --mount readonly are enforced.
			if r := c.run("run", "--rm", "-v", vol+":/data:ro", "busybox", "touch", "/data/x"); r.ExitCode == 0 || !strings.Contains(r.Stderr, "Read-only file system") {
				t.Fatalf(":ro not enforced: %s", r)
			}
			if r := c.run("run", "--rm", "--mount", "type=volume,src="+vol+",dst=/data,readonly", "busybox", "touch", "/data/x"); r.ExitCode == 0 {
				t.Fatalf("--mount readonly not enforced: %s", r)
			}
			// A driver-option volume is its device: a tmpfs here.
			if r := must(t, c.run("run", "--rm", "--mount", "type=volume,src="+other+",dst=/t", "busybox", "sh", "-c", "grep ' /t ' /proc/mounts")); !strings.Contains(r.Stdout, "tmpfs") {
				t.Fatalf("tmpfs volume not mounted as tmpfs: %s", r)
			}

			// --mount creates a missing volume with its volume-opt and volume-label.
			mopt := c.name + "-mopt"
			if r := must(t, c.run("run", "--rm", "--mount", "type=volume,src="+mopt+",dst=/t,volume-opt=type=tmpfs,volume-opt=device=tmpfs,volume-label=made=by-mount",
				"busybox", "sh", "-c", "grep ' /t ' /proc/mounts")); !strings.Contains(r.Stdout, "tmpfs") {
				t.Fatalf("--mount volume-opt: %s", r)
			}
			if v := inspectVolume(t, c.run, mopt); v.Options["type"] != "tmpfs" || v.Labels["made"] != "by-mount" {
				t.Fatalf("volume made by --mount: %+v", v)
			}
			must(t, c.run("volume", "rm", mopt))

			// ls, its filters and -q.
			if got := lines(must(t, c.run("volume", "ls", "-q", "--filter", "name="+c.name+"-")).Stdout); strings.Join(got, " ") != vol+" "+other {
				t.Fatalf("ls -q name filter: %v", got)
			}
			if got := lines(must(t, c.run("volume", "ls", "-q", "-f", "name=^"+c.name+"-d")).Stdout); strings.Join(got, " ") != vol {
				t.Fatalf("ls name filter as a regular expression: %v", got)
			}
			if got := lines(must(t, c.run("volume", "ls", "-q", "-f", "label=team=a")).Stdout); strings.Join(got, " ") != vol {
				t.Fatalf("ls label filter: %v", got)
			}
			if r := must(t, c.run("volume", "ls")); !strings.HasPrefix(r.Stdout, "DRIVER    VOLUME NAME\n") || !strings.Contains(r.Stdout, "local     "+vol+"\n") {
				t.Fatalf("ls table:\n%s", r.Stdout)
			}

			// In use (even by a stopped container): rm refuses with 409.
			must(t, c.run("create", "--name", c.name+"-user", "-v", vol+":/data", "busybox", "true"))
			for _, f := range []string{"volume=" + vol, "volume=/data"} {
				if r := must(t, c.run("ps", "-a", "--format", "{{.Names}}", "-f", f)); strings.TrimSpace(r.Stdout) != c.name+"-user" {
					t.Fatalf("ps -f %s: %q", f, r.Stdout)
				}
			}
			if got := lines(must(t, c.run("volume", "ls", "-q", "-f", "dangling=true", "-f", "name="+c.name)).Stdout); strings.Join(got, " ") != other {
				t.Fatalf("dangling filter: %v", got)
			}
			for _, args := range [][]string{{"volume", "rm", vol}, {"volume", "rm", "-f", vol}} {
				if r := c.run(args...); r.ExitCode == 0 || !strings.Contains(r.Stderr, "volume is in use") {
					t.Fatalf("%v of a volume in use: %s", args, r)
				}
			}
			resp, err := d.HTTPClient().Do(mustRequest(t, "DELETE", "http://berth/volumes/"+vol))
			if err != nil || resp.StatusCode != 409 {
				t.Fatalf("DELETE of a volume in use: %v %v", resp, err)
			}
			resp.Body.Close()
			// A create that fails after its volumes were made (name taken)
			// leaves no reference and no anonymous volume behind.
			before := lines(must(t, c.run("volume", "ls", "-q")).Stdout)
			if r := c.run("create", "--name", c.name+"-user", "-v", c.name+"-late:/late", "-v", "/anon", "busybox", "true"); r.ExitCode == 0 {
				t.Fatalf("create with a taken name: %s", r)
			}
			must(t, c.run("volume", "rm", c.name+"-late"))
			if after := lines(must(t, c.run("volume", "ls", "-q")).Stdout); strings.Join(after, " ") != strings.Join(before, " ") {
				t.Fatalf("volumes after a failed create: %v, before: %v", after, before)
			}
			must(t, c.run("rm", c.name+"-user"))
			if r := must(t, c.run("volume", "rm", vol, other)); strings.Join(lines(r.Stdout), " ") != vol+" "+other {
				t.Fatalf("rm printed %q", r.Stdout)
			}
			if r := c.run("volume", "rm", vol); r.ExitCode == 0 || !strings.Contains(r.Stderr, "no such volume") {
				t.Fatalf("rm of a missing volume: %s", r)
			}
			must(t, c.run("volume", "rm", "-f", vol))
			if _, err := os.Stat(filepath.Join(d.DataRoot, "volumes", vol)); !os.IsNotExist(err) {
				t.Fatalf("volume directory left after rm: %v", err)
			}
		})
	}
}

func mustRequest(t *testing.T, method, url string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

func TestVolumeCopyUpAndAnonymous(t *testing.T) {
	d := newDaemon(t)
	volumeImage(t, d, "volimg")
	for _, c := range clis(t, d) {
		t.Run(c.name, func(t *testing.T) {
			name := c.name + "-anon"
			// The image's VOLUME becomes an anonymous volume holding a copy
			// of the image's /data with owners and modes kept.
			r := must(t, c.run("run", "--name", name, "-v", "/scratch", "volimg", "sh", "-c",
				"stat -c '%n %u:%g %a' /data /data/f; readlink /data/link; cat /data/f; echo x > /scratch/x"))
			want := "/data 1234:99 750\n/data/f 1234:5678 640\nf\nhello\n"
			if r.Stdout != want {
				t.Fatalf("copy-up:\n%s\nwant:\n%s", r.Stdout, want)
			}
			var mounts []struct{ Type, Name, Source, Destination, Driver string }
			if err := json.Unmarshal([]byte(must(t, c.run("inspect", "-f", "{{json .Mounts}}", name)).Stdout), &mounts); err != nil || len(mounts) != 2 {
				t.Fatalf("Mounts: %v %+v", err, mounts)
			}
			var anon []string
			for _, m := range mounts {
				if m.Type != "volume" || !hex64.MatchString(m.Name) || m.Driver != "local" || m.Source != filepath.Join(d.DataRoot, "volumes", m.Name, "_data") {
					t.Fatalf("anonymous mount: %+v", m)
				}
				if _, ok := inspectVolume(t, c.run, m.Name).Labels["com.docker.volume.anonymous"]; !ok {
					t.Fatalf("anonymous volume %s lacks the anonymous label", m.Name)
				}
				anon = append(anon, m.Name)
			}

			// An empty named volume gets the copy too; nocopy keeps it empty.
			named, empty := c.name+"-named", c.name+"-nocopy"
			if r := must(t, c.run("run", "--rm", "-v", named+":/data", "volimg", "cat", "/data/f")); r.Stdout != "hello\n" {
				t.Fatalf("named copy-up: %s", r)
			}
			if r := must(t, c.run("run", "--rm", "-v", empty+":/data:nocopy", "volimg", "ls", "-A", "/data")); r.Stdout != "" {
				t.Fatalf("nocopy volume not empty: %q", r.Stdout)
			}
			// Also into a read-only mount; only at a container's first start
			// (a restart does not refill a volume emptied meanwhile).
			if r := must(t, c.run("run", "--rm", "-v", c.name+"-ro:/data:ro", "volimg", "cat", "/data/f")); r.Stdout != "hello\n" {
				t.Fatalf("no copy-up into a read-only volume: %q", r.Stdout)
			}
			once := c.name + "-once"
			must(t, c.run("run", "--name", once, "-v", once+":/data", "volimg", "true"))
			must(t, c.run("run", "--rm", "-v", once+":/data", "busybox", "sh", "-c", "rm -rf /data/* /data/.[!.]*"))
			must(t, c.run("start", "-a", once))
			if r := must(t, c.run("run", "--rm", "-v", once+":/data", "busybox", "ls", "-A", "/data")); r.Stdout != "" {
				t.Fatalf("restart copied into the volume again: %q", r.Stdout)
			}
			must(t, c.run("rm", once))
			// A volume with content is not overwritten by the image.
			must(t, c.run("run", "--rm", "-v", named+":/data", "busybox", "sh", "-c", "rm /data/f; echo mine > /data/g"))
			if r := must(t, c.run("run", "--rm", "-v", named+":/data", "volimg", "ls", "/data")); strings.Contains(r.Stdout, "f\n") && !strings.Contains(r.Stdout, "g") {
				t.Fatalf("copy-up into a non-empty volume: %q", r.Stdout)
			}

			// prune: anonymous volumes only by default, and never in use.
			if r := must(t, c.run("volume", "prune", "-f")); strings.Contains(r.Stdout, anon[0]) || strings.Contains(r.Stdout, named) {
				t.Fatalf("prune removed a volume in use or a named one: %s", r.Stdout)
			}
			// rm -v removes the container's anonymous volumes, not named ones.
			must(t, c.run("rm", "-v", name))
			for _, a := range anon {
				if r := c.run("volume", "inspect", a); r.ExitCode == 0 {
					t.Fatalf("anonymous volume %s left after rm -v", a)
				}
			}
			// Without -v they stay, and prune takes them; -a takes named ones.
			must(t, c.run("run", "--name", name, "volimg", "true"))
			anonName := strings.TrimSpace(must(t, c.run("inspect", "-f", "{{range .Mounts}}{{.Name}}{{end}}", name)).Stdout)
			must(t, c.run("rm", name))
			if r := must(t, c.run("volume", "prune", "-f")); !strings.Contains(r.Stdout, anonName) || strings.Contains(r.Stdout, named) {
				t.Fatalf("prune: %s", r.Stdout)
			}
			if r := must(t, c.run("volume", "prune", "-a", "-f")); !strings.Contains(r.Stdout, named) || !strings.Contains(r.Stdout, empty) {
				t.Fatalf("prune -a: %s", r.Stdout)
			}
			if got := lines(must(t, c.run("volume", "ls", "-q")).Stdout); len(got) != 0 {
				t.Fatalf("volumes left: %v", got)
			}
		})
	}
}

func TestVolumesFromTmpfsAndBinds(t *testing.T) {
	d := newDaemon(t)
	host := t.TempDir()
	for _, c := range clis(t, d) {
		t.Run(c.name, func(t *testing.T) {
			src := c.name + "-src"
			must(t, c.run("run", "--name", src, "-v", "/shared", "-v", host+":/hostdir", "busybox", "sh", "-c", "echo from-src > /shared/f"))
			r := must(t, c.run("run", "--rm", "--volumes-from", src, "busybox", "sh", "-c", "cat /shared/f; echo rw > /shared/g && echo ok; ls -d /hostdir"))
			if r.Stdout != "from-src\nok\n/hostdir\n" {
				t.Fatalf("--volumes-from: %s", r)
			}
			if r := c.run("run", "--rm", "--volumes-from", src+":ro", "busybox", "touch", "/shared/h"); r.ExitCode == 0 || !strings.Contains(r.Stderr, "Read-only") {
				t.Fatalf("--volumes-from :ro not enforced: %s", r)
			}
			if r := c.run("run", "--rm", "--volumes-from", "no-such-container", "busybox", "true"); r.ExitCode == 0 {
				t.Fatalf("--volumes-from a missing container: %s", r)
			}
			// --tmpfs and --mount type=tmpfs sit beside volumes.
			r = must(t, c.run("run", "--rm", "--tmpfs", "/scratch:size=1m", "--mount", "type=tmpfs,dst=/t2", "-v", c.name+"-v:/v",
				"busybox", "sh", "-c", "grep -E ' /(scratch|t2|v) ' /proc/mounts | cut -d' ' -f2,3"))
			for _, want := range []string{"/scratch tmpfs", "/t2 tmpfs", "/v "} {
				if !strings.Contains(r.Stdout, want) {
					t.Fatalf("mounts %q lack %q", r.Stdout, want)
				}
			}
			// Bind with :ro is enforced and shows in Mounts.
			must(t, c.run("create", "--name", c.name+"-b", "-v", host+":/h:ro", "busybox", "touch", "/h/x"))
			var mounts []struct {
				Type, Source, Destination string
				RW                        bool
			}
			json.Unmarshal([]byte(must(t, c.run("inspect", "-f", "{{json .Mounts}}", c.name+"-b")).Stdout), &mounts)
			if len(mounts) != 1 || mounts[0].Type != "bind" || mounts[0].Source != host || mounts[0].RW {
				t.Fatalf("bind in Mounts: %+v", mounts)
			}
			if r := c.run("start", "-a", c.name+"-b"); r.ExitCode == 0 {
				t.Fatalf("write through a :ro bind: %s", r)
			}
			if r := c.run("run", "--rm", "-v", c.name+"-v:/x", "-v", host+":/x", "busybox", "true"); r.ExitCode == 0 || !strings.Contains(r.Stderr, "Duplicate mount point") {
				t.Fatalf("duplicate mount point accepted: %s", r)
			}
			must(t, c.run("rm", "-v", src, c.name+"-b"))
			must(t, c.run("volume", "rm", c.name+"-v"))
		})
	}
}

// TestVolumeCrashSafety kills berthd with SIGKILL while containers hold
// volumes, and checks the restarted daemon still knows who uses what.
func TestVolumeCrashSafety(t *testing.T) {
	d := newDaemon(t)
	must(t, d.Berth("volume", "create", "survivor"))
	must(t, d.Berth("run", "-d", "--name", "holder", "-v", "survivor:/data", "-v", "/anon", "busybox", "sh", "-c", "echo x > /data/x; sleep 300"))
	must(t, d.Berth("create", "--name", "idle", "-v", "idle-vol:/data", "busybox", "true"))
	d.Kill9()
	d.Restart()
	for _, v := range []string{"survivor", "idle-vol"} {
		if r := d.Berth("volume", "rm", v); r.ExitCode == 0 || !strings.Contains(r.Stderr, "in use") {
			t.Fatalf("volume %s not in use after a daemon restart: %s", v, r)
		}
	}
	if r := must(t, d.Berth("exec", "holder", "cat", "/data/x")); r.Stdout != "x\n" {
		t.Fatalf("volume content after restart: %s", r)
	}
	must(t, d.Berth("rm", "-f", "-v", "holder", "idle"))
	must(t, d.Berth("volume", "rm", "survivor", "idle-vol"))
	if got := lines(must(t, d.Berth("volume", "ls", "-q")).Stdout); len(got) != 0 {
		t.Fatalf("volumes left: %v", got)
	}
	entries, _ := os.ReadDir(filepath.Join(d.DataRoot, "volumes"))
	if len(entries) != 0 {
		t.Fatalf("volume directories left: %v", entries)
	}
}

// TestVolumeDiskUsage checks system df's volume part through the API.
func TestVolumeDiskUsage(t *testing.T) {
	d := newDaemon(t)
	must(t, d.Berth("run", "--rm", "-v", "sized:/data", "busybox", "sh", "-c", "head -c 5000 /dev/zero > /data/z"))
	resp, err := d.HTTPClient().Get("http://berth/system/df?type=volume")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var df struct {
		Volumes []struct {
			Name      string
			UsageData struct{ RefCount, Size int64 }
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&df); err != nil {
		t.Fatal(err)
	}
	if len(df.Volumes) != 1 || df.Volumes[0].Name != "sized" || df.Volumes[0].UsageData.Size != 5000 || df.Volumes[0].UsageData.RefCount != 0 {
		t.Fatalf("system df volumes: %+v", df.Volumes)
	}
	must(t, d.Berth("volume", "rm", "sized"))
}

// TestVolumeAPI checks what clients other than the CLIs see: status codes,
// never-null lists, filter errors and the pre-1.42 prune.
func TestVolumeAPI(t *testing.T) {
	d := newDaemon(t)
	hc := d.HTTPClient()
	call := func(method, path, body string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(method, "http://berth"+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b := new(strings.Builder)
		if _, err := io.Copy(b, resp.Body); err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, b.String()
	}
	for _, tc := range []struct {
		method, path, body string
		code               int
		contains           string
	}{
		{"GET", "/v1.47/volumes", "", 200, `"Volumes":[]`},
		{"POST", "/v1.47/volumes/create", `{"Name":"api-vol","Labels":{"k":"v"}}`, 201, `"Name":"api-vol"`},
		{"POST", "/v1.47/volumes/create", `{"Name":"api-vol"}`, 201, `"Labels":{"k":"v"}`}, // existing name: returned as is
		{"POST", "/v1.47/volumes/create", `{}`, 201, `"Scope":"local"`},
		{"POST", "/v1.47/volumes/create", `{"Name":"bad/name"}`, 400, "invalid characters"},
		{"POST", "/v1.47/volumes/create", `{"Name":"x"}`, 400, "too short"},
		{"POST", "/v1.47/volumes/create", `{"Name":"p1","Driver":"someplugin"}`, 404, "plugin"},
		{"POST", "/v1.47/volumes/create", `{"Name":`, 400, "invalid JSON"},
		{"GET", "/v1.47/volumes/api-vol", "", 200, `"Mountpoint":"` + filepath.Join(d.DataRoot, "volumes", "api-vol", "_data")},
		{"GET", "/v1.47/volumes/nope", "", 404, "no such volume"},
		{"GET", `/v1.47/volumes?filters={"bogus":["1"]}`, "", 400, "invalid filter"},
		{"GET", `/v1.47/volumes?filters={"label":{"k=v":true}}`, "", 200, `"api-vol"`},
		{"PUT", "/v1.47/volumes/api-vol?version=1", "{}", 400, "cluster"},
		{"DELETE", "/v1.47/volumes/nope", "", 404, "no such volume"},
		{"DELETE", "/v1.47/volumes/nope?force=1", "", 204, ""},
		{"POST", "/v1.47/volumes/prune", "", 200, `"VolumesDeleted":[]`}, // 1.42+: anonymous only
		{"POST", "/v1.41/volumes/prune", "", 200, `"api-vol"`},           // before 1.42: all unused
		{"GET", "/v1.47/volumes", "", 200, `"Volumes":[]`},
	} {
		code, body := call(tc.method, tc.path, tc.body)
		if code != tc.code || !strings.Contains(body, tc.contains) {
			t.Errorf("%s %s %s: %d %s, want %d containing %q", tc.method, tc.path, tc.body, code, body, tc.code, tc.contains)
		}
	}
}
