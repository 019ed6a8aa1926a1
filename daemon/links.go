package daemon

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"maps"
	"net/netip"
	"path"
	"regexp"
	"slices"
	"strings"

	"github.com/berth-dev/berth/container"
	"github.com/berth-dev/berth/errdefs"
	api "github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
)

// Legacy links (--link name[:alias]), as dockerd keeps them:
//
//   - at create each link must name an existing container; it is stored in
//     HostConfig.Links as "/child:/parent/alias", the form inspect shows;
//   - at start, on the default bridge, the linked container must be running;
//     the linking container's /etc/hosts maps the alias, the linked
//     container's hostname and name to its address, and its environment gets
//     the ALIAS_PORT_... / ALIAS_NAME / ALIAS_ENV_... variables;
//   - on a user-defined network a link only adds the alias as a name for the
//     linked container, seen by the linking container alone. Berth writes it
//     into that container's /etc/hosts rather than scoping the embedded DNS
//     per asker (docs/network.md says what that changes).
//
// Links are looked up by the linked container's name at every start, so a
// link follows the name, not the container: renaming the linked container
// breaks the link (dockerd follows the container).

// Messages are dockerd's (runconfig/errors.go).
const (
	errHostNetworkAndLinks      = "conflicting options: host type networking can't be used with links. This would result in undefined behavior"
	errContainerNetworkAndLinks = "conflicting options: container type network can't be used with links. This would result in undefined behavior"
	errNoneNetworkAndLinks      = "conflicting options: none type network can't be used with links. This would result in undefined behavior"
)

var validLinkAlias = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)

// parseLink splits a --link value into the linked container's name and the
// alias the linking container uses (the name when none is given). It also
// reads the stored form "/child:/parent/alias", as dockerd's opts.ParseLink.
func parseLink(val string) (name, alias string, err error) {
	if val == "" {
		return "", "", errdefs.InvalidArgument("empty string specified for links")
	}
	parts := strings.Split(val, ":")
	switch {
	case len(parts) > 2:
		return "", "", errdefs.InvalidArgument("bad format for links: %s", val)
	case len(parts) == 1:
		name, alias = val, strings.TrimPrefix(val, "/")
	case strings.HasPrefix(parts[0], "/"):
		name, alias = parts[0][1:], path.Base(parts[1])
	default:
		name, alias = parts[0], parts[1]
	}
	name = strings.TrimPrefix(name, "/")
	if name == "" || alias == "" {
		return "", "", errdefs.InvalidArgument("bad format for links: %s", val)
	}
	// The alias becomes a host name in /etc/hosts and part of variable
	// names: hold it to container names' alphabet.
	if !validLinkAlias.MatchString(alias) {
		return "", "", errdefs.InvalidArgument("invalid link alias %q in %s: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed", alias, val)
	}
	return name, alias, nil
}

// registerLinks checks c's --link values at create and stores them in
// dockerd's normalized form. Call before c is stored.
func (d *Daemon) registerLinks(c *container.Container) error {
	hc := c.HostConfig
	if len(hc.Links) == 0 {
		return nil
	}
	switch mode := hc.NetworkMode; {
	case mode.IsHost():
		return errdefs.InvalidArgument(errHostNetworkAndLinks)
	case mode.IsContainer():
		return errdefs.InvalidArgument(errContainerNetworkAndLinks)
	case mode.IsNone():
		return errdefs.InvalidArgument(errNoneNetworkAndLinks)
	}
	out := make([]string, 0, len(hc.Links))
	seen := map[string]bool{}
	for _, l := range hc.Links {
		name, alias, err := parseLink(l)
		if err != nil {
			return err
		}
		if "/"+name == c.Name || name == c.ID {
			return errdefs.InvalidArgument("could not link container %s to itself (--link %s)", c.Name, l)
		}
		child, err := d.Containers.Get(name)
		if err != nil {
			// Not a 404: clients read a 404 from create as "no such image"
			// and go pulling (moby/moby#39823).
			return errdefs.InvalidArgument("could not get container for %s: %s", name, errMessage(err))
		}
		for hops := 0; child.HostConfig.NetworkMode.IsContainer(); hops++ {
			ref := child.HostConfig.NetworkMode.ConnectedContainer()
			if child, err = d.Containers.Get(ref); err != nil || hops > 16 {
				return errdefs.InvalidArgument("could not get container for %s: %s", ref, errMessage(err))
			}
		}
		if child.HostConfig.NetworkMode.IsHost() {
			return errdefs.InvalidArgument(errHostNetworkAndLinks)
		}
		if child.ID == c.ID {
			return errdefs.InvalidArgument("could not link container %s to itself (--link %s)", c.Name, l)
		}
		full := path.Join(c.Name, alias)
		if seen[full] {
			continue // dockerd keeps the first link of an alias and ignores the rest
		}
		seen[full] = true
		out = append(out, child.Name+":"+full)
	}
	hc.Links = out
	return nil
}

func errMessage(err error) string {
	if err == nil {
		return "container network chain too long"
	}
	return err.Error()
}

// activeLink is one link of a starting container, resolved.
type activeLink struct {
	name     string     // "/parent/alias", the ALIAS_NAME value
	alias    string     // "alias"
	child    string     // linked container's name without '/'
	hostname string     // linked container's hostname
	ip       netip.Addr // linked container's address on the shared network
	bridge   bool       // both on the default bridge: the legacy link proper
	env      []string
	ports    []network.Port
}

// resolveLinks finds c's linked containers and their addresses. On the
// default bridge a linked container that is not running is an error, as
// in dockerd; on a user-defined network it is skipped (dockerd would
// resolve the alias later through its DNS). Running means attached to its
// networks: the Networks manager answers that without locking the linked
// container, which may itself be starting and waiting on c.
func (d *Daemon) resolveLinks(c *container.Container) ([]activeLink, error) {
	mode := c.HostConfig.NetworkMode
	if len(c.HostConfig.Links) == 0 || mode.IsHost() || mode.IsNone() || mode.IsContainer() {
		return nil, nil
	}
	own, ok := d.Networks.Attachment(c.ID)
	if !ok {
		return nil, nil
	}
	bridgeID := ""
	if n, err := d.Networks.Get(network.NetworkBridge); err == nil && own.Endpoint(n.ID) != nil {
		bridgeID = n.ID
	}
	var out []activeLink
	for _, l := range c.HostConfig.Links {
		name, alias, err := parseLink(l)
		if err != nil {
			return nil, err
		}
		full := path.Join(c.Name, alias)
		child, err := d.Containers.Get(name)
		if err != nil {
			if bridgeID == "" {
				continue
			}
			return nil, errdefs.InvalidArgument("could not get container for %s (link %s): %s", name, full, err.Error())
		}
		if child.ID == c.ID {
			return nil, errdefs.InvalidArgument("could not link container %s to itself", c.Name)
		}
		att, ok := d.Networks.Attachment(child.ID)
		running := ok && att.NSPath != ""
		var ip netip.Addr
		if bridgeID != "" {
			if !running {
				return nil, errdefs.Conflict("Cannot link to a non running container: %s AS %s", "/"+name, full)
			}
			ce := att.Endpoint(bridgeID)
			if ce == nil || !ce.IP.IsValid() {
				return nil, errdefs.InvalidArgument("Cannot link to /%s, as it does not belong to the default network", name)
			}
			ip = ce.IP
		} else if running {
			for _, e := range own.Endpoints {
				if ce := att.Endpoint(e.NetworkID); ce != nil && ce.IP.IsValid() {
					ip = ce.IP
					break
				}
			}
		}
		if !ip.IsValid() {
			continue // user-defined network, linked container not reachable now
		}
		out = append(out, activeLink{
			name: full, alias: alias, child: att.Name, hostname: child.Config.Hostname,
			ip: ip, bridge: bridgeID != "",
			env: child.Config.Env, ports: slices.Collect(maps.Keys(child.Config.ExposedPorts)),
		})
	}
	return out, nil
}

// writeLinkHosts adds c's links to its /etc/hosts: dockerd's
// "IP\talias hostname name" on the default bridge, the alias alone on a
// user-defined network (where names already resolve through the DNS).
func (d *Daemon) writeLinkHosts(hosts *bytes.Buffer, c *container.Container) error {
	links, err := d.resolveLinks(c)
	if err != nil {
		return err
	}
	for _, l := range links {
		names := l.alias
		if l.bridge {
			names += " " + l.hostname
			if l.alias != l.child {
				names += " " + l.child
			}
		}
		fmt.Fprintf(hosts, "%s\t%s\n", l.ip, names)
	}
	return nil
}

// linkEnvConfig returns c's config with the legacy link variables under its
// own environment (its own values win, as in dockerd). A link that stopped
// resolving since writeLinkHosts checked it is left out.
func (d *Daemon) linkEnvConfig(c *container.Container) *api.Config {
	links, err := d.resolveLinks(c)
	if err != nil || len(links) == 0 {
		return c.Config
	}
	var env []string
	for _, l := range links {
		if l.bridge {
			env = append(env, linkEnv(l.name, l.ip, l.env, l.ports)...)
		}
	}
	if len(env) == 0 {
		return c.Config
	}
	cfg := *c.Config
	cfg.Env = mergeEnv(env, c.Config.Env)
	return &cfg
}

// linkEnv is the environment a link named name ("/parent/alias") gives the
// linking container, as dockerd's links.Link.ToEnv: the lowest exposed port
// (TCP first) as ALIAS_PORT, four variables per port, START/END pairs for
// runs of consecutive ports, ALIAS_NAME, and the linked container's own
// variables as ALIAS_ENV_* (except HOME and PATH).
func linkEnv(name string, ip netip.Addr, childEnv []string, ports []network.Port) []string {
	alias := strings.ReplaceAll(strings.ToUpper(path.Base(name)), "-", "_")
	ports = slices.Clone(ports)
	slices.SortFunc(ports, withTCPPriority)
	env := make([]string, 0, 1+len(ports)*4+len(childEnv))
	var pStart, pEnd network.Port
	for i, p := range ports {
		if i == 0 {
			pStart, pEnd = p, p
			env = append(env, fmt.Sprintf("%s_PORT=%s://%s:%d", alias, p.Proto(), ip, p.Num()))
		}
		prefix := fmt.Sprintf("%s_PORT_%d_%s", alias, p.Num(), strings.ToUpper(string(p.Proto())))
		env = append(env,
			fmt.Sprintf("%s=%s://%s:%d", prefix, p.Proto(), ip, p.Num()),
			fmt.Sprintf("%s_ADDR=%s", prefix, ip),
			fmt.Sprintf("%s_PORT=%d", prefix, p.Num()),
			fmt.Sprintf("%s_PROTO=%s", prefix, p.Proto()))
		if p.Num() == pEnd.Num()+1 && p.Proto() == pEnd.Proto() {
			pEnd = p
			if i < len(ports)-1 {
				continue
			}
		}
		if pEnd != pStart {
			prefix = fmt.Sprintf("%s_PORT_%d_%s", alias, pStart.Num(), strings.ToUpper(string(pStart.Proto())))
			env = append(env,
				fmt.Sprintf("%s_START=%s://%s:%d", prefix, pStart.Proto(), ip, pStart.Num()),
				fmt.Sprintf("%s_PORT_START=%d", prefix, pStart.Num()),
				fmt.Sprintf("%s_END=%s://%s:%d", prefix, pEnd.Proto(), ip, pEnd.Num()),
				fmt.Sprintf("%s_PORT_END=%d", prefix, pEnd.Num()))
		}
		pStart, pEnd = p, p
	}
	env = append(env, fmt.Sprintf("%s_NAME=%s", alias, name))
	for _, v := range childEnv {
		k, val, ok := strings.Cut(v, "=")
		if !ok || k == "HOME" || k == "PATH" {
			continue
		}
		env = append(env, fmt.Sprintf("%s_ENV_%s=%s", alias, k, val))
	}
	return env
}

// withTCPPriority orders TCP ports before the others, then by number.
func withTCPPriority(a, b network.Port) int {
	if a.Proto() == b.Proto() {
		return cmp.Compare(a.Num(), b.Num())
	}
	if a.Proto() == network.TCP {
		return -1
	}
	if b.Proto() == network.TCP {
		return 1
	}
	return cmp.Compare(a.Proto(), b.Proto())
}

// ContainerRemoveLink removes the link ref names, "parent/alias", from the
// parent's links (rm --link). A running parent keeps the /etc/hosts line and
// variables it started with until its next start.
func (d *Daemon) ContainerRemoveLink(ctx context.Context, ref string) error {
	full := "/" + strings.Trim(ref, "/")
	parentName, alias := path.Split(full)
	if parentName == "/" {
		return errdefs.InvalidArgument("Conflict, cannot remove the default link name of the container")
	}
	parent, err := d.Containers.Get(strings.TrimSuffix(parentName, "/"))
	if err != nil {
		return errdefs.NotFound("No such container: %s", ref)
	}
	parent.Lock()
	defer parent.Unlock()
	kept := make([]string, 0, len(parent.HostConfig.Links))
	for _, l := range parent.HostConfig.Links {
		if _, a, err := parseLink(l); err == nil && a == alias {
			continue
		}
		kept = append(kept, l)
	}
	if len(kept) == len(parent.HostConfig.Links) {
		return errdefs.NotFound("No such container: %s", ref)
	}
	parent.HostConfig.Links = kept
	if err := d.Containers.Save(parent); err != nil {
		return fmt.Errorf("remove link %s of %s: %w", alias, parent.Name, err)
	}
	return nil
}
