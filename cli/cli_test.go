package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// fakeDaemon is an Engine API double on a unix socket that records every request and plays a
// container that prints to stdout and stderr after start and exits with exitCode.
type fakeDaemon struct {
	t        *testing.T
	sock     string
	mu       sync.Mutex
	requests []string
	started  chan struct{}
	exitCode int
	// missingImage makes the first create answer 404 "No such image".
	missingImage bool
	// startErr, when set, makes start fail with this message (HTTP 400).
	startErr string
	tty      bool
	stdinGot bytes.Buffer
	// authHeader is the last push's or pull's X-Registry-Auth.
	authHeader string
	// onStart replaces "the container runs at once"; onKill sees every kill's signal.
	onStart func()
	onKill  func(signal string)
	bodies  map[string][]byte
}

var versionPrefix = regexp.MustCompile(`^/v[0-9]+\.[0-9]+`)

func newFakeDaemon(t *testing.T) *fakeDaemon {
	t.Helper()
	d := &fakeDaemon{t: t, started: make(chan struct{}), bodies: map[string][]byte{}}
	d.sock = filepath.Join(t.TempDir(), "berth.sock")
	l, err := net.Listen("unix", d.sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(d.serve)}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return d
}

func (d *fakeDaemon) record(r *http.Request) string {
	p := versionPrefix.ReplaceAllString(r.URL.Path, "")
	entry := r.Method + " " + p
	if r.URL.RawQuery != "" {
		entry += "?" + r.URL.RawQuery
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if p != "/_ping" {
		d.requests = append(d.requests, entry)
	}
	return p
}

func (d *fakeDaemon) log() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.requests...)
}

// paths returns the recorded requests without their query strings.
func (d *fakeDaemon) paths() []string {
	var out []string
	for _, r := range d.log() {
		p, _, _ := strings.Cut(r, "?")
		out = append(out, p)
	}
	return out
}

const fakeID = "4f1a7c0e2b9d4c6e8a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f"

func jsonReply(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func frame(stream byte, s string) []byte {
	h := make([]byte, 8)
	h[0] = stream
	binary.BigEndian.PutUint32(h[4:], uint32(len(s)))
	return append(h, s...)
}

func (d *fakeDaemon) serve(w http.ResponseWriter, r *http.Request) {
	p := d.record(r)
	w.Header().Set("Api-Version", "1.47")
	w.Header().Set("Ostype", "linux")
	body, _ := io.ReadAll(r.Body)
	d.mu.Lock()
	d.bodies[r.Method+" "+p] = body
	d.mu.Unlock()
	switch {
	case strings.HasSuffix(p, "/exec") && strings.HasPrefix(p, "/containers/"):
		jsonReply(w, 201, map[string]string{"Id": "exec1"})
	case p == "/exec/exec1/start":
		if bytes.Contains(body, []byte(`"Detach":true`)) {
			w.WriteHeader(200)
			return
		}
		d.hijackExec(w, r)
	case p == "/exec/exec1/json":
		jsonReply(w, 200, map[string]any{"ID": "exec1", "Running": false, "ExitCode": d.exitCode})
	case strings.HasPrefix(p, "/containers/nosuch"):
		jsonReply(w, 404, map[string]string{"message": "No such container: nosuch"})
	case strings.HasPrefix(p, "/containers/busybox"):
		jsonReply(w, 404, map[string]string{"message": "No such container: busybox"})
	case p == "/_ping":
		_, _ = io.WriteString(w, "OK")
	case p == "/containers/create":
		if d.missingImage {
			d.missingImage = false
			jsonReply(w, 404, map[string]string{"message": "No such image: busybox:latest"})
			return
		}
		jsonReply(w, 201, map[string]any{"Id": fakeID, "Warnings": []string{}})
	case strings.HasSuffix(p, "/push") && strings.HasPrefix(p, "/images/"):
		d.mu.Lock()
		d.authHeader = r.Header.Get("X-Registry-Auth")
		d.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"status":"The push refers to repository [localhost:5000/team/app]"}`+"\n")
	case p == "/auth":
		jsonReply(w, 200, map[string]string{"Status": "Login Succeeded"})
	case p == "/images/create":
		d.mu.Lock()
		d.authHeader = r.Header.Get("X-Registry-Auth")
		d.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"status":"Pulling from library/busybox","id":"latest"}`+"\n"+`{"status":"Status: Downloaded newer image for busybox:latest"}`+"\n")
	case strings.HasSuffix(p, "/attach"):
		d.hijack(w, r)
	case strings.HasSuffix(p, "/wait"):
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(200)
		w.(http.Flusher).Flush()
		select {
		case <-d.started:
		case <-r.Context().Done():
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"StatusCode": d.exitCode})
	case strings.HasSuffix(p, "/start"):
		if d.startErr != "" {
			jsonReply(w, 400, map[string]string{"message": d.startErr})
			return
		}
		w.WriteHeader(204)
		if d.onStart != nil {
			d.onStart()
			return
		}
		close(d.started)
	case strings.HasSuffix(p, "/kill"):
		w.WriteHeader(204)
		if d.onKill != nil {
			d.onKill(r.URL.Query().Get("signal"))
		}
	case strings.HasSuffix(p, "/resize"), strings.HasSuffix(p, "/stop"):
		w.WriteHeader(204)
	case strings.HasPrefix(p, "/images/nosuch"):
		jsonReply(w, 404, map[string]string{"message": "No such image: nosuch:latest"})
	case strings.HasPrefix(p, "/networks/nosuch"):
		jsonReply(w, 404, map[string]string{"message": "network nosuch not found"})
	case strings.HasPrefix(p, "/volumes/nosuch"):
		jsonReply(w, 404, map[string]string{"message": "get nosuch: no such volume"})
	case strings.HasPrefix(p, "/images/busybox") && strings.HasSuffix(p, "/json"):
		jsonReply(w, 200, map[string]any{"Id": "sha256:abc", "RepoTags": []string{"busybox:latest"}})
	case strings.HasSuffix(p, "/json") && strings.HasPrefix(p, "/containers/"):
		jsonReply(w, 200, map[string]any{
			"Id": fakeID, "Name": "/x1",
			"State":  map[string]any{"Status": "exited", "Running": false, "Pid": 1234567},
			"Config": map[string]any{"Tty": d.tty, "OpenStdin": true, "Image": "busybox"},
		})
	case p == "/berth/system/check":
		if r.URL.Query().Get("repair") == "1" {
			jsonReply(w, 200, map[string]any{"Checked": 5, "Problems": []map[string]string{{"Kind": "blob", "Object": "sha256:x", "Detail": "missing"}}, "Repaired": 1})
			return
		}
		jsonReply(w, 200, map[string]any{"Checked": 5, "Problems": []map[string]string{{"Kind": "blob", "Object": "sha256:x", "Detail": "missing"}}, "Repaired": 0})
	default:
		jsonReply(w, 404, map[string]string{"message": "page not found"})
	}
}

// hijack plays attach: stdout and stderr frames after start, stdin read until the client half-closes.
func (d *fakeDaemon) hijack(w http.ResponseWriter, r *http.Request) {
	conn, buf, err := w.(http.Hijacker).Hijack()
	if err != nil {
		d.t.Errorf("hijack: %v", err)
		return
	}
	defer conn.Close()
	ct := "application/vnd.docker.multiplexed-stream"
	if d.tty {
		ct = "application/vnd.docker.raw-stream"
	}
	fmt.Fprintf(conn, "HTTP/1.1 101 UPGRADED\r\nContent-Type: %s\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n", ct)
	if r.URL.Query().Get("stdin") == "1" {
		// echo stdin back once the client half-closes it
		data, _ := io.ReadAll(bufio.NewReader(buf))
		d.mu.Lock()
		d.stdinGot.Write(data)
		d.mu.Unlock()
	}
	<-d.started
	if d.tty {
		_, _ = io.WriteString(conn, "hello\r\n")
		return
	}
	_, _ = conn.Write(frame(1, "hello\n"))
	_, _ = conn.Write(frame(2, "oops\n"))
}

// hijackExec plays an exec: echoes stdin on stdout, then a stderr line.
func (d *fakeDaemon) hijackExec(w http.ResponseWriter, r *http.Request) {
	conn, buf, err := w.(http.Hijacker).Hijack()
	if err != nil {
		d.t.Errorf("hijack: %v", err)
		return
	}
	defer conn.Close()
	fmt.Fprintf(conn, "HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.multiplexed-stream\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n")
	data, _ := io.ReadAll(bufio.NewReader(buf))
	_, _ = conn.Write(frame(1, string(data)))
	_, _ = conn.Write(frame(2, "exec-err\n"))
}

func (d *fakeDaemon) run(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := Run(context.Background(), append([]string{"-H", "unix://" + d.sock}, args...), strings.NewReader(stdin), &out, &errOut)
	return code, out.String(), errOut.String()
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestRunForegroundOrder(t *testing.T) {
	d := newFakeDaemon(t)
	d.exitCode = 3
	code, out, errOut := d.run(t, "", "run", "busybox", "sh")
	if code != 3 {
		t.Errorf("exit %d, want 3 (stderr %q)", code, errOut)
	}
	if out != "hello\n" || errOut != "oops\n" {
		t.Errorf("stdout %q stderr %q", out, errOut)
	}
	want := []string{
		"POST /containers/create",
		"POST /containers/" + fakeID + "/attach?stderr=1&stdout=1&stream=1",
		"POST /containers/" + fakeID + "/wait?condition=next-exit",
		"POST /containers/" + fakeID + "/start",
	}
	if got := d.log(); !equalStrings(got, want) {
		t.Errorf("requests\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestRunRmWaitsForRemoval(t *testing.T) {
	d := newFakeDaemon(t)
	code, _, _ := d.run(t, "", "run", "--rm", "busybox")
	if code != 0 {
		t.Errorf("exit %d", code)
	}
	found := false
	for _, r := range d.log() {
		if r == "POST /containers/"+fakeID+"/wait?condition=removed" {
			found = true
		}
	}
	if !found {
		t.Errorf("no wait?condition=removed in %v", d.log())
	}
	var req struct{ HostConfig struct{ AutoRemove bool } }
	if err := json.Unmarshal(d.bodies["POST /containers/create"], &req); err != nil || !req.HostConfig.AutoRemove {
		t.Errorf("create body AutoRemove not set: %s", d.bodies["POST /containers/create"])
	}
}

func TestRunStdinHalfClose(t *testing.T) {
	d := newFakeDaemon(t)
	code, out, _ := d.run(t, "piped input\n", "run", "-i", "busybox", "cat")
	if code != 0 || out != "hello\n" {
		t.Errorf("exit %d out %q", code, out)
	}
	d.mu.Lock()
	got := d.stdinGot.String()
	d.mu.Unlock()
	if got != "piped input\n" {
		t.Errorf("daemon got stdin %q", got)
	}
	if l := d.log(); len(l) < 2 || !strings.Contains(l[1], "stdin=1") {
		t.Errorf("attach without stdin: %v", l)
	}
}

func TestRunDetachPrintsID(t *testing.T) {
	d := newFakeDaemon(t)
	code, out, _ := d.run(t, "", "run", "-d", "busybox")
	if code != 0 || out != fakeID+"\n" {
		t.Errorf("exit %d out %q", code, out)
	}
	if got, want := d.paths(), []string{"POST /containers/create", "POST /containers/" + fakeID + "/start"}; !equalStrings(got, want) {
		t.Errorf("requests %v, want %v", got, want)
	}
}

func TestRunPullsMissingImage(t *testing.T) {
	d := newFakeDaemon(t)
	d.missingImage = true
	code, _, errOut := d.run(t, "", "run", "-d", "busybox")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if !strings.HasPrefix(errOut, "Unable to find image 'busybox:latest' locally\n") {
		t.Errorf("stderr %q", errOut)
	}
	want := []string{"POST /containers/create", "POST /images/create", "POST /containers/create", "POST /containers/" + fakeID + "/start"}
	if got := d.paths(); !equalStrings(got, want) {
		t.Errorf("requests %v, want %v", got, want)
	}
	if l := d.log(); !strings.Contains(l[1], "fromImage=docker.io%2Flibrary%2Fbusybox") || !strings.Contains(l[1], "tag=latest") {
		t.Errorf("pull query: %s", l[1])
	}
}

func TestRunPullNeverDoesNotPull(t *testing.T) {
	d := newFakeDaemon(t)
	d.missingImage = true
	code, _, errOut := d.run(t, "", "run", "--pull", "never", "busybox")
	if code != 125 {
		t.Errorf("exit %d", code)
	}
	want := "berth: Error response from daemon: No such image: busybox:latest\n\nRun 'berth run --help' for more information\n"
	if errOut != want {
		t.Errorf("stderr %q, want %q", errOut, want)
	}
}

func TestRunStartErrorExitCodes(t *testing.T) {
	tests := []struct {
		msg  string
		code int
	}{
		{`exec: "nosuch": executable file not found in $PATH`, 127},
		{`exec: "/nope": stat /nope: no such file or directory`, 127},
		{`exec: "/etc": permission denied`, 126},
		{`exec: "/etc": is a directory`, 126},
		{`cgroup setup failed`, 125},
	}
	for _, tt := range tests {
		t.Run(tt.msg, func(t *testing.T) {
			d := newFakeDaemon(t)
			d.startErr = tt.msg
			code, _, errOut := d.run(t, "", "run", "busybox")
			if code != tt.code {
				t.Errorf("exit %d, want %d", code, tt.code)
			}
			want := "berth: Error response from daemon: " + tt.msg + "\n\nRun 'berth run --help' for more information\n"
			if errOut != want {
				t.Errorf("stderr %q, want %q", errOut, want)
			}
		})
	}
}

func TestStartAttachOrder(t *testing.T) {
	d := newFakeDaemon(t)
	d.exitCode = 2
	code, out, _ := d.run(t, "", "start", "-a", "x1")
	if code != 2 || out != "hello\n" {
		t.Errorf("exit %d out %q", code, out)
	}
	want := []string{
		"GET /containers/x1/json",
		"POST /containers/" + fakeID + "/attach",
		"POST /containers/" + fakeID + "/wait",
		"POST /containers/" + fakeID + "/start",
	}
	if got := d.paths(); !equalStrings(got, want) {
		t.Errorf("requests %v, want %v", got, want)
	}
}

func TestInspectFallsThroughOn404(t *testing.T) {
	d := newFakeDaemon(t)
	code, out, errOut := d.run(t, "", "inspect", "nosuch")
	if code != 1 || out != "[]\n" || errOut != "Error: No such object: nosuch\n" {
		t.Errorf("exit %d out %q err %q", code, out, errOut)
	}
	want := []string{"GET /containers/nosuch/json", "GET /images/nosuch/json", "GET /networks/nosuch", "GET /volumes/nosuch"}
	if got := d.paths(); !equalStrings(got, want) {
		t.Errorf("requests %v, want %v", got, want)
	}

	d2 := newFakeDaemon(t)
	code, out, _ = d2.run(t, "", "inspect", "-f", "{{.Id}} {{.State.Pid}}", "x1", "busybox")
	if code != 0 || out != fakeID+" 1234567\nsha256:abc <no value>\n" {
		t.Errorf("exit %d out %q", code, out)
	}
}

func TestSystemCheck(t *testing.T) {
	d := newFakeDaemon(t)
	code, out, _ := d.run(t, "", "system", "check")
	if code != 1 {
		t.Errorf("exit %d, want 1 when problems remain", code)
	}
	if !strings.Contains(out, "blob") || !strings.Contains(out, "Checked 5 objects: 1 problems, 0 repaired") {
		t.Errorf("out %q", out)
	}
	code, _, _ = d.run(t, "", "system", "check", "--repair")
	if code != 0 {
		t.Errorf("repair exit %d", code)
	}
	if l := d.log(); l[len(l)-1] != "POST /berth/system/check?repair=1" {
		t.Errorf("requests %v", l)
	}
}

func TestFlagAndArgErrors(t *testing.T) {
	d := newFakeDaemon(t)
	tests := []struct {
		args []string
		code int
		err  string
	}{
		{[]string{"ps", "--foo"}, 125, "unknown flag: --foo\n\nUsage:  berth ps [OPTIONS]\n\nRun 'berth ps --help' for more information\n"},
		{[]string{"run", "--foo"}, 125, "unknown flag: --foo\n\nUsage:  berth run [OPTIONS] IMAGE [COMMAND] [ARG...]\n\nRun 'berth run --help' for more information\n"},
		{[]string{"run"}, 1, "berth: 'berth run' requires at least 1 argument\n\nUsage:  berth run [OPTIONS] IMAGE [COMMAND] [ARG...]\n\nSee 'berth run --help' for more information\n"},
		{[]string{"logs"}, 1, "berth: 'berth logs' requires 1 argument\n\nUsage:  berth logs [OPTIONS] CONTAINER\n\nRun 'berth logs --help' for more information\n"},
		{[]string{"run", "-p", "abc", "busybox"}, 125, "berth: invalid containerPort: abc\n\nRun 'berth run --help' for more information\n"},
		{[]string{"create", "--rm", "--restart", "always", "busybox"}, 125, "berth: conflicting options: cannot specify both --restart and --rm\n\nRun 'berth create --help' for more information\n"},
		{[]string{"stop", "nosuch"}, 1, "Error response from daemon: No such container: nosuch\n"},
		{[]string{"container", "foo"}, 1, "berth: unknown command: berth container foo\n\nUsage:  berth container\n\nRun 'berth container --help' for more information\n"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			code, _, errOut := d.run(t, "", tt.args...)
			if code != tt.code || errOut != tt.err {
				t.Errorf("exit %d stderr %q, want %d %q", code, errOut, tt.code, tt.err)
			}
		})
	}
}

func TestConnectionRefusedMessage(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "none.sock")
	var out, errOut bytes.Buffer
	code := Run(context.Background(), []string{"-H", "unix://" + sock, "ps"}, strings.NewReader(""), &out, &errOut)
	want := "Cannot connect to the Berth daemon at unix://" + sock + ". Is the berth daemon running?\n"
	if code != 1 || errOut.String() != want {
		t.Errorf("exit %d stderr %q, want %q", code, errOut.String(), want)
	}
}

func TestExecOrderAndExitCode(t *testing.T) {
	d := newFakeDaemon(t)
	d.exitCode = 4
	code, out, errOut := d.run(t, "in\n", "exec", "-i", "-e", "A=1", "-u", "nobody", "-w", "/tmp", "x1", "cat")
	if code != 4 || out != "in\n" || errOut != "exec-err\n" {
		t.Errorf("exit %d out %q err %q", code, out, errOut)
	}
	want := []string{"GET /containers/x1/json", "POST /containers/x1/exec", "POST /exec/exec1/start", "GET /exec/exec1/json"}
	if got := d.paths(); !equalStrings(got, want) {
		t.Errorf("requests %v, want %v", got, want)
	}
	var req struct {
		User, WorkingDir                        string
		Env, Cmd                                []string
		AttachStdin, AttachStdout, AttachStderr bool
	}
	if err := json.Unmarshal(d.bodies["POST /containers/x1/exec"], &req); err != nil {
		t.Fatal(err)
	}
	if req.User != "nobody" || req.WorkingDir != "/tmp" || !equalStrings(req.Env, []string{"A=1"}) || !equalStrings(req.Cmd, []string{"cat"}) ||
		!req.AttachStdin || !req.AttachStdout || !req.AttachStderr {
		t.Errorf("exec create body %+v", req)
	}
}

func TestExecDetach(t *testing.T) {
	d := newFakeDaemon(t)
	code, out, _ := d.run(t, "", "exec", "-d", "x1", "sleep", "1")
	if code != 0 || out != "" {
		t.Errorf("exit %d out %q", code, out)
	}
	var req struct{ Detach bool }
	if err := json.Unmarshal(d.bodies["POST /exec/exec1/start"], &req); err != nil || !req.Detach {
		t.Errorf("exec start body %s", d.bodies["POST /exec/exec1/start"])
	}
}

func TestRunSigProxyForwardsSignals(t *testing.T) {
	d := newFakeDaemon(t)
	d.exitCode = 130
	// once the container runs, berth itself gets SIGUSR1; the container "exits" when the kill arrives
	d.onStart = func() { _ = syscall.Kill(os.Getpid(), syscall.SIGUSR1) }
	var once sync.Once
	var got string
	d.onKill = func(sig string) {
		once.Do(func() {
			d.mu.Lock()
			got = sig
			d.mu.Unlock()
			close(d.started)
		})
	}
	code, _, _ := d.run(t, "", "run", "busybox", "sleep", "100")
	if code != 130 {
		t.Errorf("exit %d", code)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if got != "USR1" {
		t.Errorf("forwarded signal %q, want USR1", got)
	}
}

func TestRunTTYIsRawStream(t *testing.T) {
	d := newFakeDaemon(t)
	d.tty = true
	code, out, _ := d.run(t, "", "run", "-t", "busybox")
	if code != 0 || out != "hello\r\n" {
		t.Errorf("exit %d out %q", code, out)
	}
	var req struct{ Tty bool }
	if err := json.Unmarshal(d.bodies["POST /containers/create"], &req); err != nil || !req.Tty {
		t.Errorf("create body %s", d.bodies["POST /containers/create"])
	}
}

func TestLoginThenPushSendsCredentials(t *testing.T) {
	d := newFakeDaemon(t)
	cfg := t.TempDir()
	code, out, errOut := d.run(t, "s3cret\n", "--config", cfg, "login", "-u", "alice", "--password-stdin", "localhost:5000")
	if code != 0 || out != "Login Succeeded\n" {
		t.Fatalf("login: %d %q %q", code, out, errOut)
	}
	var body struct{ Username, Password, ServerAddress string }
	if err := json.Unmarshal(d.bodies["POST /auth"], &body); err != nil || body.Username != "alice" || body.Password != "s3cret" || body.ServerAddress != "localhost:5000" {
		t.Errorf("auth body %s", d.bodies["POST /auth"])
	}
	code, out, errOut = d.run(t, "", "--config", cfg, "push", "localhost:5000/team/app:v1")
	if code != 0 || !strings.Contains(out, "The push refers to repository") {
		t.Fatalf("push: %d %q %q", code, out, errOut)
	}
	d.mu.Lock()
	hdr := d.authHeader
	d.mu.Unlock()
	dec, err := base64.URLEncoding.DecodeString(hdr)
	if err != nil {
		t.Fatalf("X-Registry-Auth %q: %v", hdr, err)
	}
	var ac struct{ Username, Password, ServerAddress string }
	if err := json.Unmarshal(dec, &ac); err != nil || ac.Username != "alice" || ac.Password != "s3cret" || ac.ServerAddress != "localhost:5000" {
		t.Errorf("X-Registry-Auth decodes to %s", dec)
	}
	// another registry gets an empty (but present) auth header
	if code, _, _ := d.run(t, "", "--config", cfg, "push", "other.example:5000/x"); code != 0 {
		t.Fatalf("push other: %d", code)
	}
	d.mu.Lock()
	hdr = d.authHeader
	d.mu.Unlock()
	if dec, _ := base64.URLEncoding.DecodeString(hdr); hdr == "" || strings.Contains(string(dec), "alice") {
		t.Errorf("other registry header %q (%s)", hdr, dec)
	}
	if code, out, _ := d.run(t, "", "--config", cfg, "logout", "localhost:5000"); code != 0 || out != "Removing login credentials for localhost:5000\n" {
		t.Errorf("logout: %d %q", code, out)
	}
}
