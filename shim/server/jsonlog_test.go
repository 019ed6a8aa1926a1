package server

import (
	"bytes"
	"encoding/json"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestAppendJSONStringMatchesEncodingJSON(t *testing.T) {
	cases := []string{
		"", "plain", "tab\there", "nl\n", "cr\r", "quote\"", `back\slash`, "<html>&amp;", "\b\f\x00\x01\x1f\x7f",
		"héllo wörld", "日本語", "\u2028\u2029", "bad utf8 \xff\xfe end", "\xe2\x82", "emoji 😀", "\xed\xa0\x80",
	}
	r := rand.New(rand.NewSource(1))
	for i := 0; i < 500; i++ {
		b := make([]byte, r.Intn(40))
		r.Read(b)
		cases = append(cases, string(b))
	}
	for _, s := range cases {
		want, _ := json.Marshal(s)
		if got := appendJSONString(nil, []byte(s)); !bytes.Equal(got, want) {
			t.Errorf("appendJSONString(%q) = %s, want %s", s, got, want)
		}
	}
}

type entry struct {
	Log    string `json:"log"`
	Stream string `json:"stream"`
	Time   string `json:"time"`
}

func TestLineLog(t *testing.T) {
	long := strings.Repeat("x", maxLine+10)
	tests := []struct {
		name   string
		writes []string
		want   []string // log fields, in order
	}{
		{"one line", []string{"hi\n"}, []string{"hi\n"}},
		{"two lines one write", []string{"a\nb\n"}, []string{"a\n", "b\n"}},
		{"line split across writes", []string{"hel", "lo\nwor", "ld\n"}, []string{"hello\n", "world\n"}},
		{"partial at the end", []string{"a\nno newline"}, []string{"a\n", "no newline"}},
		{"empty lines", []string{"\n\n"}, []string{"\n", "\n"}},
		{"long line is cut at 16 KiB", []string{long + "\n"}, []string{long[:maxLine], long[maxLine:] + "\n"}},
		{"long partial is cut, rest flushed at close", []string{long}, []string{long[:maxLine], long[maxLine:]}},
		{"line of exactly 16 KiB with newline after", []string{strings.Repeat("y", maxLine-1) + "\n"}, []string{strings.Repeat("y", maxLine-1) + "\n"}},
		{"nothing", nil, nil},
		{"batches past flushAt in one write", []string{strings.Repeat("ab\n", 5000) + "c"}, append(repeat("ab\n", 5000), "c")},
	}
	fixed := time.Date(2026, 11, 27, 10, 0, 0, 123456789, time.FixedZone("X", 3600))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "log")
			f, err := os.Create(path)
			if err != nil {
				t.Fatal(err)
			}
			jl := &jsonLog{f: f, now: func() time.Time { return fixed }}
			s := jl.stream("stderr")
			for _, w := range tt.writes {
				if n, err := s.Write([]byte(w)); err != nil || n != len(w) {
					t.Fatalf("Write = %d, %v", n, err)
				}
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			f.Close()
			raw, _ := os.ReadFile(path)
			var got []string
			for _, line := range bytes.Split(bytes.TrimSuffix(raw, []byte("\n")), []byte("\n")) {
				if len(line) == 0 {
					continue
				}
				var e entry
				if err := json.Unmarshal(line, &e); err != nil {
					t.Fatalf("line %q: %v", line, err)
				}
				if e.Stream != "stderr" || e.Time != "2026-11-27T09:00:00.123456789Z" {
					t.Errorf("entry %+v: wrong stream or time", e)
				}
				got = append(got, e.Log)
			}
			if strings.Join(got, "|") != strings.Join(tt.want, "|") || len(got) != len(tt.want) {
				t.Errorf("entries %q, want %q", trunc(got), trunc(tt.want))
			}
		})
	}
}

func repeat(s string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = s
	}
	return out
}

func trunc(s []string) []string {
	out := make([]string, len(s))
	for i, x := range s {
		if len(x) > 20 {
			x = x[:10] + "..." + x[len(x)-5:]
		}
		out[i] = x
	}
	return out
}

func TestEntryLayout(t *testing.T) {
	ts := time.Date(2026, 11, 27, 10, 0, 0, 120000000, time.UTC)
	got := string(appendEntry(nil, []byte("hi\n"), "stdout", ts.AppendFormat(nil, time.RFC3339Nano)))
	want := `{"log":"hi\n","stream":"stdout","time":"2026-11-27T10:00:00.12Z"}` + "\n"
	if got != want {
		t.Errorf("entry %s, want %s", got, want)
	}
}

func TestExitJSON(t *testing.T) {
	at := time.Date(2026, 11, 27, 10, 0, 0, 5, time.UTC)
	for _, tt := range []struct {
		code int
		msg  string
	}{{0, ""}, {137, ""}, {255, "oom \"killed\"\n"}} {
		b := exitJSON(tt.code, at, tt.msg)
		var e struct {
			Code     int       `json:"code"`
			ExitedAt time.Time `json:"exited_at"`
			Error    string    `json:"error,omitempty"`
		}
		if err := json.Unmarshal(b, &e); err != nil {
			t.Fatalf("%s: %v", b, err)
		}
		if e.Code != tt.code || !e.ExitedAt.Equal(at) || e.Error != tt.msg {
			t.Errorf("%s decodes to %+v", b, e)
		}
		want, _ := json.Marshal(e)
		if !bytes.Equal(b, want) {
			t.Errorf("exitJSON = %s, encoding/json says %s", b, want)
		}
	}
}

func TestRuntimeError(t *testing.T) {
	tests := []struct {
		name, log, want string
	}{
		{"none", "", ""},
		{"warning only", `{"level":"warning","msg":"careful","time":"x"}`, ""},
		{"last error wins", `{"level":"error","msg":"first","time":"x"}` + "\n" +
			`{"level":"error","msg":"runc create failed: unable to start container process: exec: \"nope\": executable file not found in $PATH","time":"x"}` + "\n",
			`runc create failed: unable to start container process: exec: "nope": executable file not found in $PATH`},
		{"escapes", `{"level":"error","msg":"a \u003cb\u003e \\ c\td","time":"x"}`, "a <b> \\ c\td"},
		{"fatal", `{"level":"fatal","msg":"boom"}`, "boom"},
		{"not json", "garbage\n", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "runtime.log")
			os.WriteFile(path, []byte(tt.log), 0o600)
			if got := runtimeError(path); got != tt.want {
				t.Errorf("runtimeError = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "exit.json")
	for _, data := range []string{"first", "second"} {
		if err := writeFileAtomic(path, []byte(data)); err != nil {
			t.Fatal(err)
		}
		if b, _ := os.ReadFile(path); string(b) != data {
			t.Errorf("file holds %q, want %q", b, data)
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("temp files left behind: %v", entries)
	}
	if err := writeFileAtomic(filepath.Join(dir, "missing", "x"), nil); err == nil {
		t.Error("write into a missing dir succeeded")
	}
}

// BenchmarkLineLog logs short lines, the worst case of json-file (one entry per 2 bytes of output).
func BenchmarkLineLog(b *testing.B) {
	f, err := os.Create(filepath.Join(b.TempDir(), "log"))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	s := (&jsonLog{f: f, now: time.Now}).stream("stdout")
	chunk := bytes.Repeat([]byte("y\n"), 8<<10)
	b.SetBytes(int64(len(chunk)))
	for i := 0; i < b.N; i++ {
		s.Write(chunk)
	}
}
