package server

// Fuzz targets for request decoding. `go test` runs each on its seed corpus;
// `go test -fuzz FuzzX ./server/` explores further. The contract: no panic,
// and bad input is a 4xx (errdefs.InvalidArgument), never a 500.

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/daemon"
	"github.com/berth-dev/berth/errdefs"
	api "github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/events"
)

// require4xx fails unless err is nil or a client error.
func require4xx(t *testing.T, what string, err error) {
	t.Helper()
	if err == nil {
		return
	}
	if s := errdefs.HTTPStatus(err); s < 400 || s >= 500 {
		t.Fatalf("%s: status %d for %v, want 4xx", what, s, err)
	}
}

func FuzzCreateBody(f *testing.F) {
	for _, s := range []string{
		``, `{}`, `null`, `[]`, `"x"`, `{"Image":"busybox"}`, `{"Image":`, `{"Image":5}`,
		`{"Image":"busybox","Cmd":"sh"}`, `{"Image":"busybox","Cmd":["sh",null]}`,
		`{"Image":"busybox","HostConfig":{"PortBindings":{"80/tcp":[{"HostIp":"not-an-ip","HostPort":"x"}]}}}`,
		`{"Image":"busybox","HostConfig":{"Memory":-1,"NanoCpus":1e30}}`,
		`{"Image":"busybox","ExposedPorts":{"99999/tcp":{},"x/y":{}}}`,
		`{"Image":"busybox","HostConfig":{"RestartPolicy":{"Name":"on-failure","MaximumRetryCount":-5}}}`,
		`{"Image":"busybox","HostConfig":{"Mounts":[{"Type":"weird","Target":""}]}}`,
		`{"Image":"busybox","HostConfig":{"ConsoleSize":[1,2,3]}}`,
		`{"Image":"busybox","Healthcheck":{"Interval":-1}}`,
		`{"Image":"busybox","NetworkingConfig":{"EndpointsConfig":{"":null}}}`,
		`{"Image":"busybox","HostConfig":{"Dns":["1.2.3.999"]}}`,
		`{"Image":"\u0000","Labels":{"":""}}`,
		strings.Repeat(`[`, 10000),
		`{"Image":"busybox"} trailing`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		r := httptest.NewRequest(http.MethodPost, "/containers/create", strings.NewReader(body))
		var req api.CreateRequest
		require4xx(t, "decode create body", decodeBody(r, &req))
	})
}

func FuzzExecBodies(f *testing.F) {
	for _, s := range []string{``, `{}`, `{"Cmd":["ls"]}`, `{"Cmd":"ls"}`, `{"ConsoleSize":[1]}`, `{"Detach":"yes"}`, `{"Tty":true,"ConsoleSize":[65536,65536]}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		var create api.ExecCreateRequest
		require4xx(t, "decode exec create", decodeBody(httptest.NewRequest(http.MethodPost, "/containers/x/exec", strings.NewReader(body)), &create))
		var start api.ExecStartRequest
		require4xx(t, "decode exec start", decodeBody(httptest.NewRequest(http.MethodPost, "/exec/x/start", strings.NewReader(body)), &start))
	})
}

func FuzzFilters(f *testing.F) {
	for _, s := range []string{
		``, `{}`, `{"label":{"a=b":true}}`, `{"label":["a=b"]}`, `{"label":{"a":false}}`, `{"label":"a"}`,
		`{"label":[1,2]}`, `{"label":null}`, `[]`, `null`, `{`, `{"a":{"b":"c"}}`, `{"":[""]}`,
		`{"event":["die"],"type":["container"],"container":["x"]}`, `{"label":["="]}`, `{"label":["=a"]}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		r := httptest.NewRequest(http.MethodGet, "/containers/json?filters="+url.QueryEscape(raw), nil)
		got, err := parseFilters(r)
		require4xx(t, "parse filters", err)
		if err != nil {
			return
		}
		// Whatever decoded must be usable by the event matcher.
		ev := daemon.Event{Message: events.Message{Type: events.ContainerEventType, Action: "exec_start: sh -c x",
			Actor: events.Actor{ID: "abc", Attributes: map[string]string{"name": "n", "a": "b", "": ""}}}}
		matchEvent(got, ev)
	})
}

func FuzzTimestamp(f *testing.F) {
	for _, s := range []string{
		"", "0", "1700000000", "1700000000.5", "1700000000.123456789", "1700000000.1234567891234",
		"2024-01-02T03:04:05Z", "2024-01-02T03:04:05.999999999+01:00", "-1", "1e9", ".", "1.", ".5",
		"99999999999999999999", "1700000000.-5", "1700000000.x", "yesterday", "10m",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		_, err := parseTimestamp(s)
		require4xx(t, "parse timestamp "+s, err)
	})
}

func FuzzSignal(f *testing.F) {
	for _, s := range []string{"", "KILL", "SIGKILL", "kill", "9", "0", "65", "-1", "SIG", "SIGRTMIN+3", "RTMAX", "sigterm", "1e3", "SIGKILL\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sig, err := daemon.ParseSignal(s)
		require4xx(t, "parse signal "+s, err)
		if err == nil && (sig <= 0 || sig > 64) {
			t.Fatalf("signal %q parsed as %d", s, sig)
		}
	})
}

func FuzzQueryValues(f *testing.F) {
	for _, s := range []string{"", "1", "0", "true", "false", "no", "yes", "TRUE", " 1 ", "-5", "99999999999999999999", "1.5", "%zz"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		r := httptest.NewRequest(http.MethodGet, "/x", nil)
		r.URL.RawQuery = "all=" + url.QueryEscape(v) + "&limit=" + url.QueryEscape(v)
		boolValue(r, "all")
		_, err := intValue(r, "limit", -1)
		require4xx(t, "int value "+v, err)
	})
}

// stubServer is the real router with every handler replaced by one that
// records the path variables, so routing runs without a daemon.
func stubServer(t testing.TB) (*Server, *map[string]string) {
	s, err := New(nil)
	if err != nil {
		t.Fatal(err)
	}
	got := new(map[string]string)
	for i := range s.routes {
		s.routes[i].h = func(ctx context.Context, w http.ResponseWriter, r *http.Request, vars map[string]string) error {
			*got = vars
			w.WriteHeader(http.StatusTeapot)
			return nil
		}
	}
	return s, got
}

func FuzzRouter(f *testing.F) {
	for _, s := range [][2]string{
		{"GET", "/_ping"}, {"HEAD", "/v1.44/_ping"}, {"GET", "/v1.12/version"}, {"GET", "/v99999999999999999999.1/version"},
		{"POST", "/containers/abc/start"}, {"DELETE", "/containers/abc"}, {"GET", "/v1.47/containers/a%2Fb/json"},
		{"POST", "/images/registry.local:5000/team/app/push"}, {"GET", "/nope"}, {"PUT", "/containers/x/start"},
		{"GET", "//containers/json"}, {"GET", "/v1.44"}, {"GET", "/v1.44/"}, {"GET", "/v/containers/json"},
		{"GET", "/containers/../../etc/passwd"}, {"BREW", "/_ping"},
	} {
		f.Add(s[0], s[1])
	}
	s, got := stubServer(f)
	f.Fuzz(func(t *testing.T, method, path string) {
		if !validMethod(method) || !strings.HasPrefix(path, "/") || strings.ContainsAny(path, " \r\n\x00") {
			return // net/http never hands such requests to a handler
		}
		u, err := url.ParseRequestURI(path)
		if err != nil {
			return
		}
		r := &http.Request{Method: method, URL: u, Header: http.Header{}, Body: http.NoBody}
		r = r.WithContext(context.Background())
		*got = nil
		w := httptest.NewRecorder()
		s.ServeHTTP(w, r)
		switch w.Code {
		case http.StatusTeapot:
			for k, v := range *got {
				if v == "" {
					t.Fatalf("%s %s: empty path variable %s", method, path, k)
				}
			}
		case http.StatusBadRequest, http.StatusNotFound, http.StatusMethodNotAllowed:
			if ct := w.Header().Get("Content-Type"); ct != "application/json" {
				t.Fatalf("%s %s: %d with Content-Type %q", method, path, w.Code, ct)
			}
		default:
			t.Fatalf("%s %s: unexpected status %d", method, path, w.Code)
		}
		if w.Header().Get("Api-Version") == "" {
			t.Fatalf("%s %s: no Api-Version header", method, path)
		}
	})
}

func validMethod(m string) bool {
	if m == "" {
		return false
	}
	for _, c := range m {
		if c < '!' || c > '~' || strings.ContainsRune(`()<>@,;:\"/[]?={}`, c) {
			return false
		}
	}
	return true
}

// hijackRecorder is a ResponseWriter whose Hijack hands over one end of a pipe.
type hijackRecorder struct {
	httptest.ResponseRecorder
	conn net.Conn
}

func (h *hijackRecorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return h.conn, bufio.NewReadWriter(bufio.NewReader(h.conn), bufio.NewWriter(h.conn)), nil
}

func FuzzHijackHeaders(f *testing.F) {
	for _, s := range [][3]string{
		{"tcp", "Upgrade", "1.47"}, {"", "", "1.47"}, {"TCP", "upgrade", "1.41"}, {"h2c", "", "1.44"},
		{"", "keep-alive, Upgrade", "1.42"}, {"tcp\r\nX-Evil: 1", "Upgrade", "1.47"}, {"websocket", "close", "1.24"},
	} {
		f.Add(s[0], s[1], s[2], false)
	}
	f.Fuzz(func(t *testing.T, upgrade, connection, version string, tty bool) {
		server, client := net.Pipe()
		defer client.Close()
		w := &hijackRecorder{conn: server}
		r := httptest.NewRequest(http.MethodPost, "/containers/x/attach", nil)
		r.Header.Set("Upgrade", upgrade)
		r.Header.Set("Connection", connection)
		ct := streamContentType(version, tty)
		done := make(chan *http.Response, 1)
		go func() {
			client.SetDeadline(time.Now().Add(10 * time.Second))
			resp, err := http.ReadResponse(bufio.NewReader(client), nil)
			if err != nil {
				t.Errorf("read hijack head: %v", err)
			}
			done <- resp
			io.Copy(io.Discard, client)
		}()
		hj, err := hijack(w, r, ct)
		if err != nil {
			t.Fatalf("hijack: %v", err)
		}
		resp := <-done
		hj.Close()
		if resp == nil {
			return
		}
		switch resp.StatusCode {
		case http.StatusSwitchingProtocols:
			if resp.Header.Get("Content-Type") != ct || resp.Header.Get("Upgrade") != "tcp" {
				t.Fatalf("101 head: %v", resp.Header)
			}
		case http.StatusOK:
			if resp.Header.Get("Content-Type") != rawStream {
				t.Fatalf("200 head: %v", resp.Header)
			}
		default:
			t.Fatalf("hijack answered %d", resp.StatusCode)
		}
		if resp.Header.Get("X-Evil") != "" || resp.Header.Get("Api-Version") != daemon.APIVersion {
			t.Fatalf("hijack head: %v", resp.Header)
		}
	})
}

func FuzzRegistryAuth(f *testing.F) {
	for _, s := range []string{
		"", "e30", "e30=", "{}", "not base64!", "eyJ1c2VybmFtZSI6ImEiLCJwYXNzd29yZCI6ImIifQ",
		"eyJhdXRoIjoiWVRwaSJ9", "eyJhdXRoIjoiISEhIn0", "bnVsbA", "W10",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		r := httptest.NewRequest(http.MethodPost, "/images/create", nil)
		r.Header.Set("X-Registry-Auth", h)
		registryAuth(r) // undecodable means anonymous; it must never panic
	})
}

func FuzzPlatformParam(f *testing.F) {
	for _, s := range []string{
		"", "linux", "linux/amd64", "linux/arm64/v8", "windows/amd64", "/", "//", "linux/amd64/v8/extra",
		`{"os":"linux","architecture":"amd64"}`, `{"os":5}`, `{`, `{"architecture":"arm","variant":"v7"}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		r := httptest.NewRequest(http.MethodPost, "/images/create", nil)
		r.URL.RawQuery = "platform=" + url.QueryEscape(v)
		_, err := platformParam(r)
		require4xx(t, "platform "+v, err)
	})
}
