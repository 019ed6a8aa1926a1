package daemon

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/berth-dev/berth/container"
	api "github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
)

func TestPortRequests(t *testing.T) {
	p80 := network.MustParsePort("80/tcp")
	p53 := network.MustParsePort("53/udp")
	lo := netip.MustParseAddr("127.0.0.1")
	for _, tc := range []struct {
		name     string
		bindings network.PortMap
		exposed  network.PortSet
		all      bool
		want     string
		wantErr  bool
	}{
		{name: "fixed", bindings: network.PortMap{p80: {{HostPort: "8080"}}}, want: "[{tcp invalid IP 8080 8080 80}]"},
		{name: "ip", bindings: network.PortMap{p80: {{HostIP: lo, HostPort: "8080"}}}, want: "[{tcp 127.0.0.1 8080 8080 80}]"},
		{name: "random", bindings: network.PortMap{p80: {{}}}, want: "[{tcp invalid IP 0 0 80}]"},
		{name: "range", bindings: network.PortMap{p53: {{HostPort: "5300-5310"}}}, want: "[{udp invalid IP 5300 5310 53}]"},
		{name: "bad range", bindings: network.PortMap{p80: {{HostPort: "90-80"}}}, wantErr: true},
		{name: "bad port", bindings: network.PortMap{p80: {{HostPort: "http"}}}, wantErr: true},
		{name: "-P", exposed: network.PortSet{p80: {}, p53: {}}, all: true, want: "[{udp invalid IP 0 0 53} {tcp invalid IP 0 0 80}]"},
		{name: "exposed only", exposed: network.PortSet{p80: {}}, want: "[]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &container.Container{
				Config:     &api.Config{ExposedPorts: tc.exposed},
				HostConfig: &api.HostConfig{PortBindings: tc.bindings, PublishAllPorts: tc.all},
			}
			got, err := portRequests(c)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("want an error, got %v", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if s := fmt.Sprint(got); s != tc.want && !(tc.want == "[]" && len(got) == 0) {
				t.Fatalf("got %s, want %s", s, tc.want)
			}
		})
	}
}

func TestEndpointConfigs(t *testing.T) {
	for _, tc := range []struct {
		mode api.NetworkMode
		eps  map[string]*network.EndpointSettings
		want string
	}{
		{"bridge", nil, "[{bridge [] invalid IP}]"},
		{"default", map[string]*network.EndpointSettings{"default": {}}, "[{bridge [] invalid IP}]"},
		{"app", map[string]*network.EndpointSettings{"app": {Aliases: []string{"web"}}, "back": {}}, "[{app [web] invalid IP} {back [] invalid IP}]"},
	} {
		got, err := endpointConfigs(tc.mode, &network.NetworkingConfig{EndpointsConfig: tc.eps})
		if err != nil {
			t.Fatal(err)
		}
		if s := fmt.Sprint(got); s != tc.want {
			t.Errorf("%s: got %s, want %s", tc.mode, s, tc.want)
		}
	}
}
