package integration

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/testutil"
	"github.com/vishvananda/netlink"
)

// netDaemon starts berthd on a private bridge and subnet; its bridges,
// veths and nftables table are removed after the daemon's own cleanup.
func netDaemon(t *testing.T, spare int) (*testutil.Daemon, testutil.NetworkConfig) {
	nc := testutil.FreeNetwork(t, spare)
	d := testutil.StartDaemon(t, nc.Args()...)
	d.ImportBusybox()
	return d, nc
}

// webCmd runs busybox httpd serving body.
func webCmd(body string) []string {
	return []string{"busybox", "sh", "-c", "mkdir -p /www && echo " + body + " > /www/index.html && exec httpd -f -p 80 -h /www"}
}

// fetchCmd fetches url from inside a container, waiting for the server to
// come up (busybox wget's -T crashes, so no timeout flag).
func fetchCmd(url string) []string {
	return []string{"busybox", "sh", "-c", "for i in $(seq 100); do wget -qO- " + url + " && exit 0; sleep 0.1; done; exit 1"}
}

// httpGet waits until url answers and returns the body.
func httpGet(t *testing.T, url string) string {
	t.Helper()
	c := &http.Client{Timeout: 2 * time.Second}
	var last error
	for i := 0; i < 100; i++ {
		resp, err := c.Get(url)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			return string(b)
		}
		last = err
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("GET %s: %v", url, last)
	return ""
}

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// portsOnBridge counts the veths plugged into a bridge, waiting a while
// for them to go (berthd deletes them in the background after an exit).
func portsOnBridge(t *testing.T, bridge string) int {
	n := 0
	for i := 0; i < 100; i++ {
		br, err := netlink.LinkByName(bridge)
		if err != nil {
			return 0
		}
		links, _ := netlink.LinkList()
		n = 0
		for _, l := range links {
			if l.Attrs().MasterIndex == br.Attrs().Index {
				n++
			}
		}
		if n == 0 {
			return 0
		}
		time.Sleep(100 * time.Millisecond)
	}
	return n
}

func TestNetworkPublishedPort(t *testing.T) {
	d, nc := netDaemon(t, 0)
	for _, c := range clis(t, d) {
		t.Run(c.name, func(t *testing.T) {
			port := freePort(t)
			must(t, c.run(append([]string{"run", "-d", "--name", "web", "-p", fmt.Sprintf("%d:80", port)}, webCmd("hello-"+c.name)...)...))
			t.Cleanup(func() { c.run("rm", "-f", "web") })
			if got := httpGet(t, fmt.Sprintf("http://127.0.0.1:%d/", port)); strings.TrimSpace(got) != "hello-"+c.name {
				t.Fatalf("published port on 127.0.0.1: %q", got)
			}
			ip := strings.TrimSpace(must(t, c.run("inspect", "-f", "{{.NetworkSettings.Networks.bridge.IPAddress}}", "web")).Stdout)
			if top := strings.TrimSpace(must(t, c.run("inspect", "-f", "{{.NetworkSettings.IPAddress}} {{.NetworkSettings.Gateway}}", "web")).Stdout); top != ip+" "+strings.Split(nc.BIP, "/")[0] {
				t.Fatalf("top-level NetworkSettings.IPAddress/Gateway: %q", top)
			}
			if got := httpGet(t, "http://"+ip+"/"); strings.TrimSpace(got) != "hello-"+c.name {
				t.Fatalf("bridge address %s: %q", ip, got)
			}
			var ns struct {
				Ports    map[string][]struct{ HostIp, HostPort string }
				Networks map[string]struct{ IPAddress, Gateway, MacAddress string }
			}
			out := must(t, c.run("inspect", "-f", "{{json .NetworkSettings}}", "web")).Stdout
			if err := json.Unmarshal([]byte(out), &ns); err != nil {
				t.Fatalf("inspect: %v: %s", err, out)
			}
			if b := ns.Ports["80/tcp"]; len(b) != 1 || b[0].HostIp != "0.0.0.0" || b[0].HostPort != fmt.Sprint(port) {
				t.Fatalf("Ports: %+v", ns.Ports)
			}
			if br := ns.Networks["bridge"]; br.IPAddress != ip || br.Gateway != strings.Split(nc.BIP, "/")[0] || !strings.HasPrefix(br.MacAddress, "02:42:") {
				t.Fatalf("Networks.bridge: %+v", ns.Networks)
			}
			// Through the host's bridge address from another container and
			// from the container itself (hairpin NAT).
			gw := strings.Split(nc.BIP, "/")[0]
			pub := fmt.Sprintf("http://%s:%d/", gw, port)
			if r := must(t, c.run(append([]string{"run", "--rm"}, fetchCmd(pub)...)...)); strings.TrimSpace(r.Stdout) != "hello-"+c.name {
				t.Fatalf("published port from another container: %s", r)
			}
			if r := must(t, c.run("exec", "web", "wget", "-qO-", pub)); strings.TrimSpace(r.Stdout) != "hello-"+c.name {
				t.Fatalf("published port from the container itself: %s", r)
			}
			ps := must(t, c.run("ps", "--format", "{{.Ports}}", "-f", "name=web")).Stdout
			if strings.TrimSpace(ps) != fmt.Sprintf("0.0.0.0:%d->80/tcp", port) {
				t.Fatalf("ps PORTS: %q", ps)
			}
			if p := strings.TrimSpace(must(t, c.run("port", "web", "80")).Stdout); p != fmt.Sprintf("0.0.0.0:%d", port) {
				t.Fatalf("port: %q", p)
			}
			// The same host port twice: a clear error, and nothing left running.
			r := c.run("run", "-d", "--name", "web2", "-p", fmt.Sprintf("%d:80", port), "busybox", "sleep", "60")
			t.Cleanup(func() { c.run("rm", "-f", "web2") })
			if r.ExitCode == 0 || !strings.Contains(r.Stderr, "port is already allocated") {
				t.Fatalf("port conflict: %s", r)
			}
			// -P publishes EXPOSEd ports on free host ports.
			must(t, c.run(append([]string{"run", "-d", "--name", "webP", "-P", "--expose", "80"}, webCmd("P")...)...))
			t.Cleanup(func() { c.run("rm", "-f", "webP") })
			hp := strings.TrimSpace(must(t, c.run("port", "webP", "80/tcp")).Stdout)
			if !strings.HasPrefix(hp, "0.0.0.0:") {
				t.Fatalf("port of -P: %q", hp)
			}
			if got := httpGet(t, "http://127.0.0.1:"+strings.TrimPrefix(hp, "0.0.0.0:")+"/"); strings.TrimSpace(got) != "P" {
				t.Fatalf("-P port: %q", got)
			}
			must(t, c.run("rm", "-f", "web", "web2", "webP"))
			if n := portsOnBridge(t, nc.Bridge); n != 0 {
				t.Fatalf("%d veths left on %s", n, nc.Bridge)
			}
			// The port is free again: Berth no longer holds it.
			l, err := net.Listen("tcp", fmt.Sprintf("0.0.0.0:%d", port))
			if err != nil {
				t.Fatalf("host port still held after rm: %v", err)
			}
			l.Close()
		})
	}
}

func TestNetworkUserDNSAndIsolation(t *testing.T) {
	d, nc := netDaemon(t, 4)
	for i, c := range clis(t, d) {
		t.Run(c.name, func(t *testing.T) {
			n1, n2 := "front-"+c.name, "back-"+c.name
			must(t, c.run("network", "create", "--subnet", nc.Spare[2*i].String(), n1))
			must(t, c.run("network", "create", "--subnet", nc.Spare[2*i+1].String(), "--label", "tier=back", n2))
			t.Cleanup(func() { c.run("rm", "-f", "web", "other", "app"); c.run("network", "rm", n1, n2) })
			must(t, c.run(append([]string{"run", "-d", "--name", "web", "--network", n1, "--network-alias", "site"}, webCmd("web")...)...))
			must(t, c.run(append([]string{"run", "-d", "--name", "other", "--network", n2}, webCmd("other")...)...))
			for _, name := range []string{"web", "site"} {
				r := must(t, c.run(append([]string{"run", "--rm", "--network", n1}, fetchCmd("http://"+name+"/")...)...))
				if strings.TrimSpace(r.Stdout) != "web" {
					t.Fatalf("by %s: %s", name, r)
				}
			}
			if r := c.run("run", "--rm", "--network", n1, "busybox", "cat", "/etc/resolv.conf"); !strings.Contains(r.Stdout, "nameserver 127.0.0.11") {
				t.Fatalf("resolv.conf on a user network: %s", r)
			}
			otherIP := strings.TrimSpace(must(t, c.run("inspect", "-f", "{{(index .NetworkSettings.Networks \""+n2+"\").IPAddress}}", "other")).Stdout)
			// Reachable from its own network...
			must(t, c.run(append([]string{"run", "--rm", "--network", n2}, fetchCmd("http://"+otherIP+"/")...)...))
			// ...neither by address nor by name from the other one.
			// (not as PID 1, which ignores timeout's SIGTERM)
			if r := c.run("run", "--rm", "--network", n1, "busybox", "sh", "-c", "timeout 3 wget -qO- http://"+otherIP+"/; exit $?"); r.ExitCode == 0 {
				t.Fatalf("networks not isolated: %s", r)
			}
			if r := c.run("run", "--rm", "--network", n1, "busybox", "nslookup", "other"); r.ExitCode == 0 && strings.Contains(r.Stdout, otherIP) {
				t.Fatalf("name of another network resolved: %s", r)
			}
			// connect / disconnect at run time
			must(t, c.run("run", "-d", "--name", "app", "--network", n1, "busybox", "sleep", "600"))
			must(t, c.run("network", "connect", "--alias", "api", n2, "app"))
			if r := must(t, c.run("exec", "app", "wget", "-qO-", "http://other/")); strings.TrimSpace(r.Stdout) != "other" {
				t.Fatalf("after connect: %s", r)
			}
			if r := must(t, c.run(append([]string{"run", "--rm", "--network", n2}, "busybox", "nslookup", "api")...)); !strings.Contains(r.Stdout, "Address") {
				t.Fatalf("alias given at connect: %s", r)
			}
			must(t, c.run("network", "disconnect", n2, "app"))
			if r := must(t, c.run("exec", "app", "ip", "-o", "-4", "addr")); strings.Contains(r.Stdout, "eth1") {
				t.Fatalf("after disconnect: %s", r)
			}
			// in use: refused; inspect lists the container
			if r := c.run("network", "rm", n1); r.ExitCode == 0 || !strings.Contains(r.Stderr, "active endpoints") {
				t.Fatalf("rm of a network in use: %s", r)
			}
			if r := must(t, c.run("network", "inspect", "-f", "{{range .Containers}}{{.Name}} {{end}}", n1)); !strings.Contains(r.Stdout, "web") {
				t.Fatalf("network inspect containers: %s", r)
			}
			must(t, c.run("rm", "-f", "web", "other", "app"))
			must(t, c.run("network", "rm", n1))
			if r := must(t, c.run("network", "prune", "-f", "--filter", "label=tier=back")); !strings.Contains(r.Stdout, n2) {
				t.Fatalf("prune: %s", r)
			}
			if r := must(t, c.run("network", "ls", "--format", "{{.Name}}")); strings.Contains(r.Stdout, n1) || strings.Contains(r.Stdout, n2) || !strings.Contains(r.Stdout, "bridge") {
				t.Fatalf("ls after rm/prune: %s", r)
			}
			if n := portsOnBridge(t, nc.Bridge); n != 0 {
				t.Fatalf("%d veths left", n)
			}
		})
	}
}

func TestNetworkModes(t *testing.T) {
	d, nc := netDaemon(t, 2)
	for i, c := range clis(t, d) {
		t.Run(c.name, func(t *testing.T) {
			r := must(t, c.run("run", "--rm", "--network", "none", "busybox", "ip", "-o", "link"))
			if strings.Contains(r.Stdout, "eth0") || !strings.Contains(r.Stdout, "lo") {
				t.Fatalf("none: %s", r)
			}
			r = must(t, c.run("run", "--rm", "--network", "host", "busybox", "ip", "-o", "link"))
			if !strings.Contains(r.Stdout, nc.Bridge) {
				t.Fatalf("host: no %s in %s", nc.Bridge, r)
			}
			must(t, c.run("run", "-d", "--name", "base", "busybox", "sleep", "600"))
			t.Cleanup(func() { c.run("rm", "-f", "base") })
			ip := strings.TrimSpace(must(t, c.run("inspect", "-f", "{{.NetworkSettings.Networks.bridge.IPAddress}}", "base")).Stdout)
			r = must(t, c.run("run", "--rm", "--network", "container:base", "busybox", "ip", "-o", "-4", "addr"))
			if !strings.Contains(r.Stdout, ip+"/") {
				t.Fatalf("container:base does not share %s: %s", ip, r)
			}
			r = must(t, c.run("run", "--rm", "--dns", "10.9.9.9", "--add-host", "db.local:10.1.2.3", "busybox", "cat", "/etc/resolv.conf", "/etc/hosts"))
			if !strings.Contains(r.Stdout, "nameserver 10.9.9.9") || !strings.Contains(r.Stdout, "10.1.2.3\tdb.local") {
				t.Fatalf("--dns/--add-host: %s", r)
			}
			// --internal: an address, no default route, no way out
			in := "internal-" + c.name
			must(t, c.run("network", "create", "--internal", "--subnet", nc.Spare[i].String(), in))
			t.Cleanup(func() { c.run("network", "rm", in) })
			if r := must(t, c.run("network", "inspect", "-f", "{{.Internal}}", in)); strings.TrimSpace(r.Stdout) != "true" {
				t.Fatalf("inspect internal: %s", r)
			}
			r = must(t, c.run("run", "--rm", "--network", in, "busybox", "sh", "-c", "ip -o -4 addr; echo ROUTES; ip route"))
			if !strings.Contains(r.Stdout, "eth0") || strings.Contains(r.Stdout, "default") {
				t.Fatalf("internal network: %s", r)
			}
			must(t, c.run("network", "rm", in))
			if r := c.run("network", "rm", "bridge"); r.ExitCode == 0 || !strings.Contains(r.Stderr, "pre-defined") {
				t.Fatalf("rm bridge: %s", r)
			}
			must(t, c.run("rm", "-f", "base"))
		})
	}
}

// A kill -9 of berthd leaves running containers' networking working; the
// next berthd adopts it and tears it down only when the containers go.
func TestNetworkSurvivesDaemonKill(t *testing.T) {
	nc := testutil.FreeNetwork(t, 1)
	d := testutil.StartDaemon(t, nc.Args()...)
	d.ImportBusybox()
	port := freePort(t)
	must(t, d.Berth("network", "create", "--subnet", nc.Spare[0].String(), "app"))
	must(t, d.Berth(append([]string{"run", "-d", "--name", "web", "--network", "app", "-p", fmt.Sprintf("127.0.0.1:%d:80", port)}, webCmd("alive")...)...))
	httpGet(t, fmt.Sprintf("http://127.0.0.1:%d/", port))
	d.Kill9()
	if got := httpGet(t, fmt.Sprintf("http://127.0.0.1:%d/", port)); strings.TrimSpace(got) != "alive" {
		t.Fatalf("after kill -9: %q", got)
	}
	d.Restart(nc.Args()...)
	if got := httpGet(t, fmt.Sprintf("http://127.0.0.1:%d/", port)); strings.TrimSpace(got) != "alive" {
		t.Fatalf("after restart: %q", got)
	}
	r := must(t, d.Berth(append([]string{"run", "--rm", "--network", "app"}, fetchCmd("http://web/")...)...))
	if strings.TrimSpace(r.Stdout) != "alive" {
		t.Fatalf("DNS after restart: %s", r)
	}
	if ps := must(t, d.Berth("ps", "--format", "{{.Ports}}")).Stdout; strings.TrimSpace(ps) != fmt.Sprintf("127.0.0.1:%d->80/tcp", port) {
		t.Fatalf("ps after restart: %q", ps)
	}
	must(t, d.Berth("rm", "-f", "web"))
	must(t, d.Berth("network", "rm", "app"))
	if l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port)); err != nil {
		t.Fatalf("port still held: %v", err)
	} else {
		l.Close()
	}
}
