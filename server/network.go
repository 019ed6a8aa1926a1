package server

import (
	"context"
	"net/http"

	api "github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
)

func (s *Server) networkRoutes() []route {
	return []route{
		{http.MethodPost, "/networks/create", s.postNetworksCreate},
		{http.MethodPost, "/networks/prune", s.postNetworksPrune},
		{http.MethodGet, "/networks", s.getNetworks},
		{http.MethodGet, "/networks/", s.getNetworks},
		{http.MethodGet, "/networks/{id}", s.getNetwork},
		{http.MethodDelete, "/networks/{id}", s.deleteNetwork},
		{http.MethodPost, "/networks/{id}/connect", s.postNetworkConnect},
		{http.MethodPost, "/networks/{id}/disconnect", s.postNetworkDisconnect},
	}
}

func (s *Server) postNetworksCreate(ctx context.Context, w http.ResponseWriter, r *http.Request, _ map[string]string) error {
	var req network.CreateRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	resp, err := s.daemon.NetworkCreate(ctx, req)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, resp)
}

func (s *Server) getNetworks(ctx context.Context, w http.ResponseWriter, r *http.Request, _ map[string]string) error {
	f, err := parseFilters(r)
	if err != nil {
		return err
	}
	list, err := s.daemon.NetworkList(ctx, f)
	if err != nil {
		return err
	}
	out := make([]network.Summary, 0, len(list))
	for _, n := range list {
		out = append(out, network.Summary{Network: n.Network})
	}
	return writeJSON(w, http.StatusOK, out)
}

func (s *Server) getNetwork(ctx context.Context, w http.ResponseWriter, r *http.Request, v map[string]string) error {
	n, err := s.daemon.NetworkInspect(ctx, v["id"])
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, n)
}

func (s *Server) deleteNetwork(ctx context.Context, w http.ResponseWriter, r *http.Request, v map[string]string) error {
	if err := s.daemon.NetworkRemove(ctx, v["id"]); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) postNetworksPrune(ctx context.Context, w http.ResponseWriter, r *http.Request, _ map[string]string) error {
	f, err := parseFilters(r)
	if err != nil {
		return err
	}
	rep, err := s.daemon.NetworkPrune(ctx, f)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, rep)
}

func (s *Server) postNetworkConnect(ctx context.Context, w http.ResponseWriter, r *http.Request, v map[string]string) error {
	var req network.ConnectRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	if err := s.daemon.NetworkConnect(ctx, v["id"], req); err != nil {
		return err
	}
	w.WriteHeader(http.StatusOK)
	return nil
}

func (s *Server) postNetworkDisconnect(ctx context.Context, w http.ResponseWriter, r *http.Request, v map[string]string) error {
	var req network.DisconnectRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	if err := s.daemon.NetworkDisconnect(ctx, v["id"], req); err != nil {
		return err
	}
	w.WriteHeader(http.StatusOK)
	return nil
}

// legacyNetworkSettings is NetworkSettings as API versions before 1.52
// send it: the default bridge's endpoint also at the top level, which
// `inspect -f '{{.NetworkSettings.IPAddress}}'` and older SDKs read.
type legacyNetworkSettings struct {
	*api.NetworkSettings
	Bridge                 string
	HairpinMode            bool
	LinkLocalIPv6Address   string
	LinkLocalIPv6PrefixLen int
	SecondaryIPAddresses   []string
	SecondaryIPv6Addresses []string
	EndpointID             string
	Gateway                string
	GlobalIPv6Address      string
	GlobalIPv6PrefixLen    int
	IPAddress              string
	IPPrefixLen            int
	IPv6Gateway            string
	MacAddress             string
}

type legacyInspect struct {
	*api.InspectResponse
	NetworkSettings *legacyNetworkSettings
}

// withLegacyNetworkSettings wraps a container's inspect answer for the
// wire; nil settings stay as they are.
func withLegacyNetworkSettings(r *api.InspectResponse) any {
	if r == nil || r.NetworkSettings == nil {
		return r
	}
	l := &legacyNetworkSettings{NetworkSettings: r.NetworkSettings}
	if ep := r.NetworkSettings.Networks[network.NetworkBridge]; ep != nil && ep.IPAddress.IsValid() {
		l.EndpointID, l.IPAddress, l.IPPrefixLen = ep.EndpointID, ep.IPAddress.String(), ep.IPPrefixLen
		l.MacAddress = ep.MacAddress.String()
		if ep.Gateway.IsValid() {
			l.Gateway = ep.Gateway.String()
		}
	}
	return legacyInspect{InspectResponse: r, NetworkSettings: l}
}
