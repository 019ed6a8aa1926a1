package cli

import (
	"io"
	"reflect"
	"strings"
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
