package daemon

import (
	"reflect"
	"strings"
	"testing"

	api "github.com/moby/moby/api/types/container"
)

func TestMergeUpdate(t *testing.T) {
	i64 := func(v int64) *int64 { return &v }
	always := api.RestartPolicy{Name: api.RestartPolicyAlways}
	for _, tt := range []struct {
		name     string
		cur      api.HostConfig
		upd      api.UpdateConfig
		want     api.HostConfig
		conflict string
	}{
		{name: "nothing changes nothing",
			cur:  api.HostConfig{Resources: api.Resources{CPUShares: 512}},
			want: api.HostConfig{Resources: api.Resources{CPUShares: 512}}},
		{name: "memory within the implicit swap limit",
			cur:  api.HostConfig{Resources: api.Resources{Memory: 32 << 20}},
			upd:  api.UpdateConfig{Resources: api.Resources{Memory: 64 << 20, NanoCPUs: 5e8, PidsLimit: i64(50)}},
			want: api.HostConfig{Resources: api.Resources{Memory: 64 << 20, MemorySwap: 64 << 20, NanoCPUs: 5e8, PidsLimit: i64(50)}}},
		{name: "memory above the implicit swap limit",
			cur:      api.HostConfig{Resources: api.Resources{Memory: 16 << 20}},
			upd:      api.UpdateConfig{Resources: api.Resources{Memory: 64 << 20}},
			conflict: "Memory limit should be smaller than already set memoryswap limit, update the memoryswap at the same time"},
		{name: "memory on an unlimited container needs a swap limit, as dockerd",
			upd:      api.UpdateConfig{Resources: api.Resources{Memory: 64 << 20}},
			conflict: "Memory limit should be smaller than already set memoryswap limit"},
		{name: "memory with swap",
			upd:  api.UpdateConfig{Resources: api.Resources{Memory: 64 << 20, MemorySwap: -1}},
			want: api.HostConfig{Resources: api.Resources{Memory: 64 << 20, MemorySwap: -1}}},
		{name: "every other field",
			cur: api.HostConfig{Resources: api.Resources{CPUShares: 2, BlkioWeight: 10}},
			upd: api.UpdateConfig{Resources: api.Resources{CPUShares: 1024, BlkioWeight: 500, CPUPeriod: 50000, CPUQuota: 25000,
				CpusetCpus: "0", CpusetMems: "0", MemoryReservation: 8 << 20, PidsLimit: i64(-1)}},
			want: api.HostConfig{Resources: api.Resources{CPUShares: 1024, BlkioWeight: 500, CPUPeriod: 50000, CPUQuota: 25000,
				CpusetCpus: "0", CpusetMems: "0", MemoryReservation: 8 << 20, PidsLimit: i64(-1)}}},
		{name: "cpus after a period",
			cur:      api.HostConfig{Resources: api.Resources{CPUPeriod: 50000}},
			upd:      api.UpdateConfig{Resources: api.Resources{NanoCPUs: 1e9}},
			conflict: "Conflicting options: Nano CPUs cannot be updated as CPU Period has already been set"},
		{name: "cpus after a quota",
			cur:      api.HostConfig{Resources: api.Resources{CPUQuota: 50000}},
			upd:      api.UpdateConfig{Resources: api.Resources{NanoCPUs: 1e9}},
			conflict: "Conflicting options: Nano CPUs cannot be updated as CPU Quota has already been set"},
		{name: "period after cpus",
			cur:      api.HostConfig{Resources: api.Resources{NanoCPUs: 1e9}},
			upd:      api.UpdateConfig{Resources: api.Resources{CPUPeriod: 50000}},
			conflict: "Conflicting options: CPU Period cannot be updated as NanoCPUs has already been set"},
		{name: "quota after cpus",
			cur:      api.HostConfig{Resources: api.Resources{NanoCPUs: 1e9}},
			upd:      api.UpdateConfig{Resources: api.Resources{CPUQuota: 50000}},
			conflict: "Conflicting options: CPU Quota cannot be updated as NanoCPUs has already been set"},
		{name: "restart policy",
			upd:  api.UpdateConfig{RestartPolicy: always},
			want: api.HostConfig{RestartPolicy: always}},
		{name: "restart policy of an auto-removed container",
			cur:      api.HostConfig{AutoRemove: true},
			upd:      api.UpdateConfig{RestartPolicy: always},
			conflict: "Restart policy cannot be updated because AutoRemove is enabled for the container"},
		{name: "no restart for an auto-removed container",
			cur:  api.HostConfig{AutoRemove: true},
			upd:  api.UpdateConfig{RestartPolicy: api.RestartPolicy{Name: api.RestartPolicyDisabled}},
			want: api.HostConfig{AutoRemove: true, RestartPolicy: api.RestartPolicy{Name: api.RestartPolicyDisabled}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			hc := tt.cur
			err := mergeUpdate(&hc, tt.upd)
			if tt.conflict != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tt.conflict) {
					t.Fatalf("err = %v, want %q", err, tt.conflict)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(hc, tt.want) {
				t.Errorf("got %+v\nwant %+v", hc.Resources, tt.want.Resources)
			}
		})
	}
}
