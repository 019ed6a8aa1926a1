package daemon

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berth-dev/berth/container"
	"github.com/berth-dev/berth/errdefs"
	api "github.com/moby/moby/api/types/container"
)

func TestParseLogOpts(t *testing.T) {
	tests := []struct {
		opts    map[string]string
		want    logLimits
		errPart string // "" = valid
	}{
		{nil, logLimits{0, 1}, ""},
		{map[string]string{"max-size": "10k"}, logLimits{10000, 1}, ""},
		{map[string]string{"max-size": "10m"}, logLimits{10000000, 1}, ""},
		{map[string]string{"max-size": "1g"}, logLimits{1000000000, 1}, ""},
		{map[string]string{"max-size": "10g"}, logLimits{10000000000, 1}, ""},
		{map[string]string{"max-size": "1024"}, logLimits{1024, 1}, ""},
		{map[string]string{"max-size": "1.5m"}, logLimits{1500000, 1}, ""},
		{map[string]string{"max-size": "100KB"}, logLimits{100000, 1}, ""},
		{map[string]string{"max-size": "-1"}, logLimits{0, 1}, ""},
		{map[string]string{"max-size": "100k", "max-file": "3"}, logLimits{100000, 3}, ""},
		{map[string]string{"max-size": "100k", "max-file": "1"}, logLimits{100000, 1}, ""},
		{map[string]string{"max-size": "abc"}, logLimits{}, "invalid max-size 'abc'"},
		{map[string]string{"max-size": "10x"}, logLimits{}, "invalid max-size '10x'"},
		{map[string]string{"max-size": ""}, logLimits{}, "invalid max-size ''"},
		{map[string]string{"max-size": "0"}, logLimits{}, "max-size must be a positive number"},
		{map[string]string{"max-size": "-2"}, logLimits{}, "invalid max-size '-2'"},
		{map[string]string{"max-file": "3"}, logLimits{}, "needs max-size"},
		{map[string]string{"max-size": "-1", "max-file": "3"}, logLimits{}, "needs max-size"},
		{map[string]string{"max-size": "1m", "max-file": "0"}, logLimits{}, "max-file cannot be less than 1"},
		{map[string]string{"max-size": "1m", "max-file": "-1"}, logLimits{}, "max-file cannot be less than 1"},
		{map[string]string{"max-size": "1m", "max-file": "x"}, logLimits{}, "invalid max-file 'x'"},
		{map[string]string{"max-size": "1m", "compress": "true"}, logLimits{}, "unknown log opt 'compress' for json-file log driver"},
		{map[string]string{"tag": "x"}, logLimits{}, "unknown log opt 'tag' for json-file log driver"},
		{map[string]string{"labels": "a"}, logLimits{}, "unknown log opt 'labels' for json-file log driver"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.opts), func(t *testing.T) {
			got, err := parseLogOpts(tt.opts)
			if tt.errPart == "" {
				if err != nil || got != tt.want {
					t.Errorf("parseLogOpts = %+v, %v; want %+v", got, err, tt.want)
				}
				return
			}
			if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), tt.errPart) {
				t.Errorf("parseLogOpts error %v, want invalid argument containing %q", err, tt.errPart)
			}
			hc := api.HostConfig{LogConfig: api.LogConfig{Type: "json-file", Config: tt.opts}}
			if err := validateHostConfig(&hc); !errdefs.IsInvalidArgument(err) {
				t.Errorf("validateHostConfig: %v, want invalid argument", err)
			}
		})
	}
}

func record(n int) string {
	return fmt.Sprintf(`{"log":"line %d\n","stream":"stdout","time":"2026-11-27T10:00:00.000000001Z"}`+"\n", n)
}

// rotLog writes records as the shim does, rotating by count instead of size.
type rotLog struct {
	path     string
	maxFiles int
	perFile  int
	inFile   int
	next     int
	f        *os.File
}

func newRotLog(t testing.TB, path string, maxFiles, perFile int) *rotLog {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return &rotLog{path: path, maxFiles: maxFiles, perFile: perFile, next: 1, f: f}
}

func (l *rotLog) write(t testing.TB, n int) {
	for range n {
		if l.inFile == l.perFile {
			l.rotate(t)
		}
		if _, err := l.f.WriteString(record(l.next)); err != nil {
			t.Error(err)
		}
		l.next++
		l.inFile++
	}
}

func (l *rotLog) rotate(t testing.TB) {
	name := func(i int) string { return l.path + "." + strconv.Itoa(i) }
	if l.maxFiles > 1 {
		os.Remove(name(l.maxFiles - 1))
		for i := l.maxFiles - 1; i > 1; i-- {
			os.Rename(name(i-1), name(i))
		}
		os.Rename(l.path, name(1))
	} else {
		os.Remove(l.path)
	}
	f, err := os.OpenFile(l.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE|os.O_EXCL, 0o640)
	if err != nil {
		t.Error(err)
		return
	}
	l.f.Close()
	l.f, l.inFile = f, 0
}

func lineNumbers(t testing.TB, ms []LogMessage) []int {
	var out []int
	for _, m := range ms {
		n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(string(m.Line), "line "), "\n"))
		if err != nil {
			t.Fatalf("record %q", m.Line)
		}
		out = append(out, n)
	}
	return out
}

func span(from, to int) []int {
	var out []int
	for i := from; i <= to; i++ {
		out = append(out, i)
	}
	return out
}

func TestValidateLogConfig(t *testing.T) {
	tests := []struct {
		lc      api.LogConfig
		errPart string // "" = valid
	}{
		{api.LogConfig{}, ""},
		{api.LogConfig{Type: "json-file"}, ""},
		{api.LogConfig{Type: "json-file", Config: map[string]string{"max-size": "1m", "max-file": "2"}}, ""},
		{api.LogConfig{Type: "none"}, ""},
		{api.LogConfig{Type: "none", Config: map[string]string{}}, ""},
		{api.LogConfig{Type: "none", Config: map[string]string{"max-size": "1m"}}, "invalid logging opts for driver none"},
		{api.LogConfig{Type: "none", Config: map[string]string{"tag": "x"}}, "invalid logging opts for driver none"},
		{api.LogConfig{Type: "json-file", Config: map[string]string{"tag": "x"}}, "unknown log opt 'tag' for json-file log driver"},
		{api.LogConfig{Type: "syslog"}, `logging driver "syslog" is not supported: berthd writes json-file logs (or none)`},
		{api.LogConfig{Type: "None"}, `logging driver "None" is not supported`},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.lc), func(t *testing.T) {
			err := validateLogConfig(tt.lc)
			if tt.errPart == "" {
				if err != nil {
					t.Errorf("validateLogConfig: %v", err)
				}
				return
			}
			if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), tt.errPart) {
				t.Errorf("validateLogConfig: %v, want invalid argument containing %q", err, tt.errPart)
			}
		})
	}
}

func TestWithDefaultLogConfig(t *testing.T) {
	rot := map[string]string{"max-size": "10m", "max-file": "3"}
	tests := []struct {
		name    string
		lc, def api.LogConfig
		want    api.LogConfig
	}{
		{"no daemon default", api.LogConfig{}, api.LogConfig{}, api.LogConfig{Type: "json-file"}},
		{"daemon's driver", api.LogConfig{}, api.LogConfig{Type: "none"}, api.LogConfig{Type: "none"}},
		{"daemon's driver and options", api.LogConfig{}, api.LogConfig{Type: "json-file", Config: rot},
			api.LogConfig{Type: "json-file", Config: rot}},
		{"same driver: the container's options win", api.LogConfig{Type: "json-file", Config: map[string]string{"max-size": "1m"}},
			api.LogConfig{Type: "json-file", Config: rot},
			api.LogConfig{Type: "json-file", Config: map[string]string{"max-size": "1m", "max-file": "3"}}},
		{"other driver: no daemon options", api.LogConfig{Type: "none"}, api.LogConfig{Type: "json-file", Config: rot},
			api.LogConfig{Type: "none"}},
		{"json-file over a none default", api.LogConfig{Type: "json-file"}, api.LogConfig{Type: "none"},
			api.LogConfig{Type: "json-file"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := withDefaultLogConfig(tt.lc, tt.def); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("withDefaultLogConfig = %+v, want %+v", got, tt.want)
			}
		})
	}
	if rot["max-size"] != "10m" || len(rot) != 2 {
		t.Errorf("the daemon's options were changed: %v", rot)
	}
}

// TestReadLogsNone: a container with --log-driver none has no log to read, and says so as dockerd does; its
// inspect shows no log path.
func TestReadLogsNone(t *testing.T) {
	d := &Daemon{cfg: Config{DataRoot: t.TempDir()}}
	c := &container.Container{ID: strings.Repeat("cd", 32), State: container.State{Status: api.StateExited},
		HostConfig: &api.HostConfig{LogConfig: api.LogConfig{Type: "none"}}}
	streaming := false
	o := LogsOptions{Stdout: true, Tail: -1, Streaming: func() { streaming = true }}
	err := d.readLogs(context.Background(), c, o, func(LogMessage) error { return nil })
	if !errors.Is(err, errdefs.ErrNotImplemented) || err.Error() != "configured logging driver does not support reading" {
		t.Errorf("readLogs: %v, want not implemented: configured logging driver does not support reading", err)
	}
	if streaming {
		t.Error("readLogs said it was streaming before refusing: the response head would be 200")
	}
	if p := d.containerLogPath(c); p != "" {
		t.Errorf("containerLogPath = %q, want none", p)
	}
	c.HostConfig.LogConfig.Type = "json-file"
	if p := d.containerLogPath(c); p != d.logPath(c.ID) {
		t.Errorf("containerLogPath of json-file = %q, want %q", p, d.logPath(c.ID))
	}
}

// TestReadLogsRotated reads an exited container's rotated log: oldest file first, --tail across files.
func TestReadLogsRotated(t *testing.T) {
	root := t.TempDir()
	d := &Daemon{cfg: Config{DataRoot: root}}
	id := strings.Repeat("ab", 32)
	c := &container.Container{ID: id, State: container.State{Status: api.StateExited},
		HostConfig: &api.HostConfig{LogConfig: api.LogConfig{Type: "json-file", Config: map[string]string{"max-size": "1k", "max-file": "3"}}}}
	os.MkdirAll(d.containerDir(id), 0o700)
	w := newRotLog(t, d.logPath(id), 3, 10)
	w.write(t, 45) // files: 21-30, 31-40, 41-45
	tests := []struct {
		name   string
		tail   int
		follow bool
		want   []int
	}{
		{"all", -1, false, span(21, 45)},
		{"tail within the current file", 3, false, span(43, 45)},
		{"tail across files", 12, false, span(34, 45)},
		{"tail more than there is", 100, false, span(21, 45)},
		{"tail exactly all", 25, false, span(21, 45)},
		{"tail all but one", 24, false, span(22, 45)},
		{"tail 1", 1, false, []int{45}},
		{"huge tail allocates nothing up front", 1 << 40, false, span(21, 45)},
		{"tail 0", 0, false, nil},
		{"follow on an exited container returns", -1, true, span(21, 45)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []LogMessage
			err := d.readLogs(context.Background(), c, LogsOptions{Stdout: true, Stderr: true, Tail: tt.tail, Follow: tt.follow},
				func(m LogMessage) error { got = append(got, m); return nil })
			if err != nil {
				t.Fatal(err)
			}
			if g := lineNumbers(t, got); fmt.Sprint(g) != fmt.Sprint(tt.want) {
				t.Errorf("lines %v, want %v", g, tt.want)
			}
		})
	}
}

// TestLogFollowerRotations: between two reads the log rotates once, several times (up to max-file - 1,
// nothing lost), or more (the deleted files are lost, nothing repeats).
func TestLogFollowerRotations(t *testing.T) {
	tests := []struct {
		name     string
		maxFiles int
		steps    []int // records written before each scan (10 per file)
		want     []int
	}{
		{"no rotation", 3, []int{5, 3}, span(1, 8)},
		{"one rotation", 3, []int{5, 10}, span(1, 15)},
		{"two rotations between reads", 3, []int{5, 20}, span(1, 25)},
		{"rotation right at the end of a file", 3, []int{10, 1, 10}, span(1, 21)},
		// The open file is read to its end even once deleted; the ones deleted unread are lost.
		{"fell behind: the oldest left", 3, []int{5, 40}, append(span(1, 10), span(21, 45)...)},
		{"max-file 1 starts again", 1, []int{5, 10}, span(1, 15)},
		{"max-file 1, several restarts", 1, []int{5, 30}, append(span(1, 10), span(31, 35)...)},
		{"many rounds", 4, []int{1, 7, 13, 30, 2, 9}, span(1, 62)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "c-json.log")
			w := newRotLog(t, path, tt.maxFiles, 10)
			lf, err := openLogFollower(path, tt.maxFiles)
			if err != nil {
				t.Fatal(err)
			}
			defer lf.Close()
			var got []LogMessage
			for _, n := range tt.steps {
				w.write(t, n)
				if err := lf.scan(func(m LogMessage) error { got = append(got, m); return nil }, true); err != nil {
					t.Fatal(err)
				}
			}
			if g := lineNumbers(t, got); fmt.Sprint(g) != fmt.Sprint(tt.want) {
				t.Errorf("lines %v, want %v", g, tt.want)
			}
		})
	}
}

// TestLogFollowerConcurrent follows a log that a writer rotates as fast as it can: whatever is read is in
// order without repeats and ends with the last record.
func TestLogFollowerConcurrent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c-json.log")
	w := newRotLog(t, path, 3, 50)
	lf, err := openLogFollower(path, 3)
	if err != nil {
		t.Fatal(err)
	}
	defer lf.Close()
	const total = 20000
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for w.next <= total {
			w.write(t, 7)
		}
	}()
	var got []LogMessage
	collect := func(m LogMessage) error { got = append(got, m); return nil }
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	for running := true; running; {
		select {
		case <-done:
			running = false
		default:
			time.Sleep(time.Millisecond)
		}
		if err := lf.scan(collect, running); err != nil {
			t.Fatal(err)
		}
	}
	nums := lineNumbers(t, got)
	for i := 1; i < len(nums); i++ {
		if nums[i] <= nums[i-1] {
			t.Fatalf("record %d after %d: out of order or repeated", nums[i], nums[i-1])
		}
	}
	if len(nums) == 0 || nums[len(nums)-1] != w.next-1 {
		t.Fatalf("last record read %v, want %d", nums[len(nums)-1:], w.next-1)
	}
}
