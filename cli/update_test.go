package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/moby/moby/api/types/container"
	"github.com/spf13/pflag"
)

func TestUpdateConfig(t *testing.T) {
	i64 := func(v int64) *int64 { return &v }
	for _, tt := range []struct {
		name    string
		args    []string
		want    container.UpdateConfig
		wantErr string
	}{
		{name: "no flags", args: nil, wantErr: "you must provide one or more flags when using this command"},
		{name: "memory cpus pids", args: []string{"--memory", "64m", "--cpus", "0.5", "--pids-limit", "50"},
			want: container.UpdateConfig{Resources: container.Resources{Memory: 64 << 20, NanoCPUs: 5e8, PidsLimit: i64(50)}}},
		{name: "short flags", args: []string{"-m", "1g", "-c", "512"},
			want: container.UpdateConfig{Resources: container.Resources{Memory: 1 << 30, CPUShares: 512}}},
		{name: "unlimited swap", args: []string{"--memory-swap", "-1"},
			want: container.UpdateConfig{Resources: container.Resources{MemorySwap: -1}}},
		{name: "swap and reservation", args: []string{"--memory-swap", "128m", "--memory-reservation", "32m"},
			want: container.UpdateConfig{Resources: container.Resources{MemorySwap: 128 << 20, MemoryReservation: 32 << 20}}},
		{name: "cfs and cpuset", args: []string{"--cpu-period", "50000", "--cpu-quota", "25000", "--cpuset-cpus", "0-1", "--cpuset-mems", "0"},
			want: container.UpdateConfig{Resources: container.Resources{CPUPeriod: 50000, CPUQuota: 25000, CpusetCpus: "0-1", CpusetMems: "0"}}},
		{name: "blkio", args: []string{"--blkio-weight", "300"},
			want: container.UpdateConfig{Resources: container.Resources{BlkioWeight: 300}}},
		{name: "pids unlimited is sent", args: []string{"--pids-limit", "0"},
			want: container.UpdateConfig{Resources: container.Resources{PidsLimit: i64(0)}}},
		{name: "restart always", args: []string{"--restart", "always"},
			want: container.UpdateConfig{RestartPolicy: container.RestartPolicy{Name: container.RestartPolicyAlways}}},
		{name: "restart on-failure count", args: []string{"--restart", "on-failure:3"},
			want: container.UpdateConfig{RestartPolicy: container.RestartPolicy{Name: container.RestartPolicyOnFailure, MaximumRetryCount: 3}}},
		{name: "restart bad", args: []string{"--restart", "sometimes"}, wantErr: "invalid restart policy"},
		{name: "restart count on always", args: []string{"--restart", "always:2"}, wantErr: "maximum retry count"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			flags := pflag.NewFlagSet("update", pflag.ContinueOnError)
			o := addUpdateFlags(flags)
			if err := flags.Parse(tt.args); err != nil {
				t.Fatal(err)
			}
			got, err := updateConfig(flags, o)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestUpdateFlagErrors(t *testing.T) {
	for _, args := range [][]string{
		{"--memory", "lots"},
		{"--memory-swap", "-2"},
		{"--cpus", "half"},
		{"--blkio-weight", "70000"},
		{"--pids-limit", "x"},
	} {
		flags := pflag.NewFlagSet("update", pflag.ContinueOnError)
		flags.SetOutput(io.Discard)
		addUpdateFlags(flags)
		if err := flags.Parse(args); err == nil {
			t.Errorf("%v: parsed without error", args)
		}
	}
}

// TestUpdateCommand drives `berth update` against a stub daemon: each name
// that worked is printed, failures go to stderr with exit status 1, and
// the body is what dockerd expects.
func TestUpdateCommand(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "d.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	bodies := map[string][]byte{}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Api-Version", "1.47")
		p := versionPrefix.ReplaceAllString(r.URL.Path, "")
		b, _ := io.ReadAll(r.Body)
		switch {
		case p == "/_ping":
			io.WriteString(w, "OK")
		case p == "/containers/web/update" && r.Method == http.MethodPost:
			mu.Lock()
			bodies[p] = b
			mu.Unlock()
			jsonReply(w, 200, map[string]any{"Warnings": []string{}})
		case p == "/containers/warn/update":
			jsonReply(w, 200, map[string]any{"Warnings": []string{"careful"}})
		default:
			jsonReply(w, 404, map[string]string{"message": "No such container: nosuch"})
		}
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	run := func(args ...string) (int, string, string) {
		var out, errOut bytes.Buffer
		code := Run(context.Background(), append([]string{"-H", "unix://" + sock, "update"}, args...), strings.NewReader(""), &out, &errOut)
		return code, out.String(), errOut.String()
	}

	code, out, errOut := run("--memory", "64m", "--pids-limit", "5", "--restart", "on-failure:2", "web", "nosuch")
	if code != 1 || out != "web\n" || !strings.Contains(errOut, "No such container: nosuch") {
		t.Fatalf("update web nosuch: %d %q %q", code, out, errOut)
	}
	var got container.UpdateConfig
	mu.Lock()
	err = json.Unmarshal(bodies["/containers/web/update"], &got)
	mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	if got.Memory != 64<<20 || got.PidsLimit == nil || *got.PidsLimit != 5 || got.NanoCPUs != 0 ||
		got.RestartPolicy != (container.RestartPolicy{Name: container.RestartPolicyOnFailure, MaximumRetryCount: 2}) {
		t.Errorf("request body %s", bodies["/containers/web/update"])
	}
	if code, out, _ := run("--cpus", "1", "warn"); code != 0 || out != "warn\ncareful\n" {
		t.Errorf("warnings: %d %q", code, out)
	}
	if code, _, errOut := run("web"); code != 1 || !strings.Contains(errOut, "you must provide one or more flags") {
		t.Errorf("no flags: %d %q", code, errOut)
	}
	if code, _, errOut := run("--memory", "64m"); code != 1 || !strings.Contains(errOut, "requires at least 1 argument") {
		t.Errorf("no container: %d %q", code, errOut)
	}
}
