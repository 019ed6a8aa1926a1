// Command registry-bench measures blob push and pull throughput of
// berth-registry against distribution 2.8 (Debian's docker-registry) on the
// same machine: 1 MB and 100 MB blobs, 1 and 8 concurrent clients, each
// registry on its own loopback port and temporary filesystem root.
//
//	go run ./bench/registry -berth bin/berth-registry -distribution /usr/bin/docker-registry
package main

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	digest "github.com/opencontainers/go-digest"
)

type target struct {
	name string
	addr string
	stop func()
}

type blob struct {
	data []byte
	dig  digest.Digest
}

type result struct {
	target          string
	size            int
	conc            int
	count           int
	push, pull      time.Duration
	pushMBs, pullMB float64
}

func main() {
	berth := flag.String("berth", "bin/berth-registry", "berth-registry binary")
	dist := flag.String("distribution", "/usr/bin/docker-registry", "distribution 2.8 binary")
	rounds := flag.Int("rounds", 3, "repetitions; the median is reported")
	flag.StringVar(&pullClient, "pull-client", pullClient, "splice or http (see pullClient)")
	flag.StringVar(&only, "only", "", "run only cases SIZE_MB:CLIENTS, comma-separated (e.g. 100:8)")
	flag.Parse()
	if err := run(*berth, *dist, *rounds); err != nil {
		fmt.Fprintln(os.Stderr, "registry-bench:", err)
		os.Exit(1)
	}
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func startProc(name string, args []string, addr string) (func(), error) {
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	stop := func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	}
	for i := 0; i < 200; i++ {
		resp, err := http.Get("http://" + addr + "/v2/")
		if err == nil {
			resp.Body.Close()
			return stop, nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	stop()
	return nil, fmt.Errorf("%s did not come up on %s", name, addr)
}

func startBerth(bin, root string) (target, error) {
	addr, err := freeAddr()
	if err != nil {
		return target{}, err
	}
	stop, err := startProc(bin, []string{"serve", "--addr", addr, "--root", root, "--access-log=false"}, addr)
	return target{name: "berth-registry", addr: addr, stop: stop}, err
}

func startDistribution(bin, root string) (target, error) {
	addr, err := freeAddr()
	if err != nil {
		return target{}, err
	}
	cfg := fmt.Sprintf(`version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
http:
  addr: %s
`, filepath.Join(root, "data"), addr)
	p := filepath.Join(root, "config.yml")
	if err := os.WriteFile(p, []byte(cfg), 0o644); err != nil {
		return target{}, err
	}
	stop, err := startProc(bin, []string{"serve", p}, addr)
	return target{name: "distribution 2.8", addr: addr, stop: stop}, err
}

// push uploads a blob the way docker does: POST, one streamed PATCH, PUT.
func push(c *http.Client, addr, repo string, b blob) error {
	resp, err := c.Post("http://"+addr+"/v2/"+repo+"/blobs/uploads/", "", nil)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 202 {
		return fmt.Errorf("POST: %d", resp.StatusCode)
	}
	loc := resp.Header.Get("Location")
	if !strings.HasPrefix(loc, "http") {
		loc = "http://" + addr + loc
	}
	req, _ := http.NewRequest("PATCH", loc, bytes.NewReader(b.data))
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err = c.Do(req)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 202 {
		return fmt.Errorf("PATCH: %d", resp.StatusCode)
	}
	loc = resp.Header.Get("Location")
	if !strings.HasPrefix(loc, "http") {
		loc = "http://" + addr + loc
	}
	sep := "?"
	if strings.Contains(loc, "?") {
		sep = "&"
	}
	req, _ = http.NewRequest("PUT", loc+sep+"digest="+b.dig.String(), nil)
	resp, err = c.Do(req)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 201 {
		return fmt.Errorf("PUT: %d", resp.StatusCode)
	}
	return nil
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 1<<20); return &b }}

// pullClient is "splice" (a raw HTTP/1.1 GET whose body the kernel splices
// to /dev/null: the instrument costs almost nothing, so the server is what is
// measured) or "http" (net/http reading into a buffer, like a typical client).
var pullClient = "splice"

var only string

func pull(c *http.Client, addr, repo string, b blob) error {
	if pullClient == "splice" {
		return pullSplice(addr, "/v2/"+repo+"/blobs/"+b.dig.String(), int64(len(b.data)))
	}
	return pullHTTP(c, addr, repo, b)
}

var devNull = func() *os.File {
	f, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		panic(err)
	}
	return f
}()

func pullSplice(addr, path string, want int64) error {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", path, addr); err != nil {
		return err
	}
	br := bufio.NewReaderSize(conn, 4096)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return err
	}
	if resp.StatusCode != 200 || resp.ContentLength != want {
		return fmt.Errorf("GET %s: %d, Content-Length %d", path, resp.StatusCode, resp.ContentLength)
	}
	buffered := int64(br.Buffered())
	br.Discard(int(buffered))
	n, err := io.CopyN(devNull, conn, want-buffered) // *os.File.ReadFrom(*net.TCPConn): splice
	if err != nil || n != want-buffered {
		return fmt.Errorf("GET %s: body %d of %d bytes: %v", path, n+buffered, want, err)
	}
	return nil
}

func pullHTTP(c *http.Client, addr, repo string, b blob) error {
	resp, err := c.Get("http://" + addr + "/v2/" + repo + "/blobs/" + b.dig.String())
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	buf := bufPool.Get().(*[]byte)
	defer bufPool.Put(buf)
	// Large reads, so the client is not what is measured.
	n, err := io.CopyBuffer(struct{ io.Writer }{io.Discard}, resp.Body, *buf)
	if err != nil {
		return err
	}
	if resp.StatusCode != 200 || n != int64(len(b.data)) {
		return fmt.Errorf("GET: %d, %d bytes", resp.StatusCode, n)
	}
	return nil
}

// parallel runs fn over blobs with conc workers and returns the wall time.
func parallel(blobs []blob, conc int, fn func(int, blob) error) (time.Duration, error) {
	start := time.Now()
	var wg sync.WaitGroup
	errc := make(chan error, len(blobs))
	next := make(chan int)
	for w := 0; w < conc; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := fn(i, blobs[i]); err != nil {
					errc <- err
				}
			}
		}()
	}
	for i := range blobs {
		next <- i
	}
	close(next)
	wg.Wait()
	close(errc)
	if err := <-errc; err != nil {
		return 0, err
	}
	return time.Since(start), nil
}

func makeBlobs(size, count int) []blob {
	base := make([]byte, size)
	rand.Read(base)
	out := make([]blob, count)
	for i := range out {
		d := bytes.Clone(base)
		rand.Read(d[:16]) // distinct content, distinct digest
		out[i] = blob{data: d, dig: digest.FromBytes(d)}
	}
	return out
}

func run(berthBin, distBin string, rounds int) error {
	cases := []struct{ size, conc, count int }{
		{1 << 20, 1, 128},
		{1 << 20, 8, 256},
		{100 << 20, 1, 8},
		{100 << 20, 8, 16},
	}
	if only != "" {
		var keep []struct{ size, conc, count int }
		for _, tc := range cases {
			if strings.Contains(","+only+",", fmt.Sprintf(",%d:%d,", tc.size>>20, tc.conc)) {
				keep = append(keep, tc)
			}
		}
		cases = keep
	}
	client := &http.Client{Transport: &http.Transport{
		MaxIdleConnsPerHost: 16, DisableCompression: true,
		WriteBufferSize: 1 << 20, ReadBufferSize: 1 << 20, // large writes: measure the server, not the client
	}}
	var results []result
	for _, tc := range cases {
		blobs := makeBlobs(tc.size, tc.count)
		starters := []func(root string) (target, error){
			func(root string) (target, error) { return startDistribution(distBin, root) },
			func(root string) (target, error) { return startBerth(berthBin, root) },
		}
		// Rounds alternate between the registries so that background load
		// on the machine falls on both alike.
		pushes := make([][]time.Duration, len(starters))
		pulls := make([][]time.Duration, len(starters))
		names := make([]string, len(starters))
		for r := 0; r < rounds; r++ {
			for si, start := range starters {
				root, err := os.MkdirTemp("", "registry-bench-")
				if err != nil {
					return err
				}
				tg, err := start(root)
				if err != nil {
					os.RemoveAll(root)
					return err
				}
				names[si] = tg.name
				pt, err := parallel(blobs, tc.conc, func(i int, b blob) error {
					return push(client, tg.addr, fmt.Sprintf("bench/repo%d", i%tc.conc), b)
				})
				if err == nil {
					var gt time.Duration
					gt, err = parallel(blobs, tc.conc, func(i int, b blob) error {
						return pull(client, tg.addr, fmt.Sprintf("bench/repo%d", i%tc.conc), b)
					})
					pushes[si], pulls[si] = append(pushes[si], pt), append(pulls[si], gt)
				}
				tg.stop()
				os.RemoveAll(root)
				if err != nil {
					return fmt.Errorf("%s: %w", tg.name, err)
				}
			}
		}
		for si := range starters {
			total := float64(tc.size*tc.count) / (1 << 20)
			pm, gm := median(pushes[si]), median(pulls[si])
			res := result{target: names[si], size: tc.size, conc: tc.conc, count: tc.count, push: pm, pull: gm,
				pushMBs: total / pm.Seconds(), pullMB: total / gm.Seconds()}
			results = append(results, res)
			fmt.Fprintf(os.Stderr, "%-17s %4d MB x%-4d c=%d  push %8.1f MB/s  pull %8.1f MB/s\n",
				res.target, tc.size>>20, tc.count, tc.conc, res.pushMBs, res.pullMB)
		}
	}
	fmt.Println("| blob size | clients | blobs | distribution 2.8 push | berth push | ratio | distribution 2.8 pull | berth pull | ratio |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|")
	for i := 0; i+1 < len(results); i += 2 {
		d, b := results[i], results[i+1]
		fmt.Printf("| %d MB | %d | %d | %.0f MB/s | %.0f MB/s | %.2fx | %.0f MB/s | %.0f MB/s | %.2fx |\n",
			d.size>>20, d.conc, d.count, d.pushMBs, b.pushMBs, b.pushMBs/d.pushMBs, d.pullMB, b.pullMB, b.pullMB/d.pullMB)
	}
	return nil
}

func median(ds []time.Duration) time.Duration {
	s := append([]time.Duration(nil), ds...)
	for i := range s {
		for j := i + 1; j < len(s); j++ {
			if s[j] < s[i] {
				s[i], s[j] = s[j], s[i]
			}
		}
	}
	return s[len(s)/2]
}
