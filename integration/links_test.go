package integration

import (
	"strings"
	"testing"
)

// linkedWebCmd runs busybox httpd on 8080 serving body.
func linkedWebCmd(body string) []string {
	return []string{"busybox", "sh", "-c", "mkdir -p /www && echo " + body + " > /www/index.html && exec httpd -f -p 8080 -h /www"}
}

func TestLinks(t *testing.T) {
	d, nc := netDaemon(t, 2)
	for i, c := range clis(t, d) {
		t.Run(c.name, func(t *testing.T) {
			net := "linknet-" + c.name
			t.Cleanup(func() { c.run("rm", "-f", "db", "web", "web2", "udb"); c.run("network", "rm", net) })
			must(t, c.run(append([]string{"run", "-d", "--name", "db", "--expose", "8080", "-e", "SECRET=s3", "-e", "PATH=/bin"}, linkedWebCmd("linked")...)...))
			id := strings.TrimSpace(must(t, c.run("inspect", "-f", "{{.Id}}", "db")).Stdout)
			ip := strings.TrimSpace(must(t, c.run("inspect", "-f", "{{.NetworkSettings.Networks.bridge.IPAddress}}", "db")).Stdout)
			if ip == "" || len(id) < 12 {
				t.Fatalf("db: id %q ip %q", id, ip)
			}

			// /etc/hosts: dockerd's "IP\talias hostname name"
			r := must(t, c.run("run", "--rm", "--name", "web", "--link", "db:database", "busybox", "cat", "/etc/hosts"))
			if want := ip + "\tdatabase " + id[:12] + " db\n"; !strings.Contains(r.Stdout, want) {
				t.Fatalf("hosts lack %q:\n%s", want, r.Stdout)
			}
			// the alias reaches the server
			r = must(t, c.run(append([]string{"run", "--rm", "--link", "db:database"}, fetchCmd("http://database:8080/")...)...))
			if strings.TrimSpace(r.Stdout) != "linked" {
				t.Fatalf("wget through the link: %s", r)
			}
			// the legacy variables; the container's own -e wins
			r = must(t, c.run("run", "--rm", "--name", "webenv", "--link", "db:database", "-e", "DATABASE_ENV_SECRET=mine", "busybox", "env"))
			for _, want := range []string{
				"DATABASE_PORT=tcp://" + ip + ":8080",
				"DATABASE_PORT_8080_TCP=tcp://" + ip + ":8080",
				"DATABASE_PORT_8080_TCP_ADDR=" + ip,
				"DATABASE_PORT_8080_TCP_PORT=8080",
				"DATABASE_PORT_8080_TCP_PROTO=tcp",
				"DATABASE_NAME=/webenv/database",
				"DATABASE_ENV_SECRET=mine",
			} {
				if !strings.Contains(r.Stdout, want+"\n") {
					t.Errorf("env lacks %s:\n%s", want, r.Stdout)
				}
			}
			if strings.Contains(r.Stdout, "DATABASE_ENV_PATH") {
				t.Errorf("PATH of the linked container leaked:\n%s", r.Stdout)
			}
			// exec sees them too
			must(t, c.run("run", "-d", "--name", "web2", "--link", "db", "busybox", "sleep", "600"))
			if r := must(t, c.run("exec", "web2", "env")); !strings.Contains(r.Stdout, "DB_NAME=/web2/db\n") || !strings.Contains(r.Stdout, "DB_ENV_SECRET=s3\n") {
				t.Errorf("exec env:\n%s", r.Stdout)
			}
			// inspect shows the normalized form
			if r := must(t, c.run("inspect", "-f", "{{json .HostConfig.Links}}", "web2")); strings.TrimSpace(r.Stdout) != `["/db:/web2/db"]` {
				t.Errorf("inspect Links: %s", r.Stdout)
			}
			must(t, c.run("rm", "-f", "web2"))

			// refusals
			if r := c.run("run", "--rm", "--link", "nope:x", "busybox", "true"); r.ExitCode == 0 ||
				!strings.Contains(r.Stderr, "could not get container for nope") || strings.Contains(r.Stderr, "Unable to find image") {
				t.Errorf("link to a missing container: %s", r)
			}
			if r := c.run("run", "--rm", "--network", "host", "--link", "db", "busybox", "true"); r.ExitCode == 0 ||
				!strings.Contains(r.Stderr, "conflicting options: host type networking can't be used with links") {
				t.Errorf("link with --network host: %s", r)
			}
			must(t, c.run("create", "--name", "web2", "--link", "db:database", "busybox", "true"))
			must(t, c.run("stop", "-t", "1", "db"))
			if r := c.run("start", "web2"); r.ExitCode == 0 || !strings.Contains(r.Stderr, "Cannot link to a non running container: /db AS /web2/database") {
				t.Errorf("start with a stopped linked container: %s", r)
			}
			must(t, c.run("start", "db"))
			must(t, c.run("start", "web2"))
			// rm --link drops the link and leaves both containers
			if r := c.run("rm", "--link", "db"); r.ExitCode == 0 || !strings.Contains(r.Stderr, "cannot remove the default link name") {
				t.Errorf("rm --link of a container name: %s", r)
			}
			if r := c.run("rm", "--link", "web2/nolink"); r.ExitCode == 0 || !strings.Contains(r.Stderr, "No such container: web2/nolink") {
				t.Errorf("rm --link of an unknown link: %s", r)
			}
			must(t, c.run("rm", "--link", "/web2/database"))
			if r := must(t, c.run("inspect", "-f", "{{json .HostConfig.Links}}", "web2")); strings.TrimSpace(r.Stdout) != "[]" && strings.TrimSpace(r.Stdout) != "null" {
				t.Errorf("Links after rm --link: %s", r.Stdout)
			}
			must(t, c.run("stop", "-t", "1", "db"))
			must(t, c.run("start", "web2")) // no longer needs db
			must(t, c.run("start", "db"))
			must(t, c.run("rm", "-f", "web2"))

			// user-defined network: the alias names the linked container for
			// the linking container only
			must(t, c.run("network", "create", "--subnet", nc.Spare[i].String(), net))
			must(t, c.run(append([]string{"run", "-d", "--name", "udb", "--network", net}, linkedWebCmd("user")...)...))
			r = must(t, c.run(append([]string{"run", "--rm", "--network", net, "--link", "udb:store"}, fetchCmd("http://store:8080/")...)...))
			if strings.TrimSpace(r.Stdout) != "user" {
				t.Fatalf("wget through a link on a user network: %s", r)
			}
			if r := c.run("run", "--rm", "--network", net, "busybox", "sh", "-c", "grep store /etc/hosts || nslookup store"); r.ExitCode == 0 {
				t.Errorf("alias seen by a container without the link: %s", r)
			}
		})
	}
}
