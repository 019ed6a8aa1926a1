package opts

import (
	"bufio"
	"bytes"
	"fmt"
	"math/big"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/docker/go-units"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
)

// MemBytes is a pflag.Value for sizes like "512m" or "1g" (RAMInBytes, as docker).
type MemBytes int64

func (m *MemBytes) String() string {
	if m == nil || *m == 0 {
		return "0"
	}
	return units.BytesSize(float64(*m))
}

// Set parses a size with an optional b, k, m, g suffix.
func (m *MemBytes) Set(v string) error {
	n, err := units.RAMInBytes(v)
	*m = MemBytes(n)
	return err
}

// Type is shown in --help.
func (m *MemBytes) Type() string { return "bytes" }

// Value returns the size in bytes.
func (m *MemBytes) Value() int64 { return int64(*m) }

// NanoCPUs is a pflag.Value for decimal CPU counts ("1.5") stored in billionths.
type NanoCPUs int64

func (n *NanoCPUs) String() string {
	if n == nil || *n == 0 {
		return ""
	}
	return big.NewRat(int64(*n), 1e9).FloatString(3)
}

// Set parses a decimal number of CPUs.
func (n *NanoCPUs) Set(v string) error {
	r, ok := new(big.Rat).SetString(v)
	if !ok {
		return fmt.Errorf("failed to parse %v as a rational number", v)
	}
	nano := r.Mul(r, big.NewRat(1e9, 1))
	if !nano.IsInt() {
		return fmt.Errorf("value is too precise")
	}
	*n = NanoCPUs(nano.Num().Int64())
	return nil
}

// Type is shown in --help.
func (n *NanoCPUs) Type() string { return "decimal" }

// Value returns the count in billionths of a CPU.
func (n *NanoCPUs) Value() int64 { return int64(*n) }

// ValidateEnv fills in "KEY" from the client's own environment when it is set there, as docker does.
func ValidateEnv(val string) (string, error) {
	k, _, hasValue := strings.Cut(val, "=")
	if k == "" {
		return "", fmt.Errorf("invalid environment variable: %s", val)
	}
	if hasValue {
		return val, nil
	}
	if v, ok := os.LookupEnv(k); ok {
		return k + "=" + v, nil
	}
	return val, nil
}

// ReadKVFile reads an env or label file: KEY=VALUE lines, '#' comments and blank lines skipped.
// A bare KEY takes its value from the environment when lookup is non-nil and finds it, else it is dropped
// (lookup nil keeps it as KEY=).
func ReadKVFile(path string, lookup func(string) (string, bool)) ([]string, error) {
	content, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if !utf8.Valid(content) {
		return nil, fmt.Errorf("env file %s contains invalid utf8 bytes", path)
	}
	content = bytes.TrimPrefix(content, []byte("\xef\xbb\xbf"))
	var lines []string
	sc := bufio.NewScanner(bytes.NewReader(content))
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimLeftFunc(sc.Text(), unicode.IsSpace)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, hasValue := strings.Cut(line, "=")
		if k == "" {
			return nil, fmt.Errorf("no variable name on line '%s'", line)
		}
		if strings.ContainsAny(k, " \t") {
			return nil, fmt.Errorf("variable '%s' contains whitespaces", k)
		}
		switch {
		case hasValue:
			lines = append(lines, k+"="+v)
		case lookup == nil:
			lines = append(lines, k+"=")
		default:
			if ev, ok := lookup(k); ok {
				lines = append(lines, k+"="+ev)
			}
		}
	}
	return lines, sc.Err()
}

// ConvertKVStringsToMap turns ["a=b", "c"] into {"a":"b","c":""}.
func ConvertKVStringsToMap(values []string) map[string]string {
	m := make(map[string]string, len(values))
	for _, v := range values {
		k, val, _ := strings.Cut(v, "=")
		m[k] = val
	}
	return m
}

// ParseRestartPolicy parses "no", "always", "unless-stopped" or "on-failure[:max-retries]".
func ParseRestartPolicy(policy string) (container.RestartPolicy, error) {
	if policy == "" {
		return container.RestartPolicy{}, nil
	}
	name, count, hasCount := strings.Cut(policy, ":")
	if hasCount && count == "" {
		return container.RestartPolicy{}, fmt.Errorf("invalid restart policy format: no maximum retry count provided")
	}
	if name == "" {
		return container.RestartPolicy{}, fmt.Errorf("invalid restart policy format: no policy provided before colon")
	}
	p := container.RestartPolicy{Name: container.RestartPolicyMode(name)}
	if hasCount {
		n, err := strconv.Atoi(count)
		if err != nil {
			return container.RestartPolicy{}, fmt.Errorf("invalid restart policy format: maximum retry count must be an integer: %w", err)
		}
		p.MaximumRetryCount = n
	}
	return p, container.ValidateRestartPolicy(p)
}

// PortMapping is one container port and, when published, its host binding.
type PortMapping struct {
	Port    network.Port
	Binding network.PortBinding
}

// ParsePortSpec parses one -p value: [ip:][hostPort[-end]:]containerPort[-end][/proto].
func ParsePortSpec(raw string) ([]PortMapping, error) {
	spec, proto, _ := strings.Cut(raw, "/")
	if proto == "" {
		proto = "tcp"
	}
	switch proto {
	case "tcp", "udp", "sctp":
	default:
		return nil, fmt.Errorf("invalid proto: %s", proto)
	}
	var ip, hostPort, containerPort string
	// IPv6 host addresses come in brackets: [::1]:8080:80
	if strings.HasPrefix(spec, "[") {
		end := strings.Index(spec, "]")
		if end < 0 {
			return nil, fmt.Errorf("invalid IP address: %s", spec)
		}
		ip = spec[1:end]
		rest := strings.TrimPrefix(spec[end+1:], ":")
		hostPort, containerPort, _ = strings.Cut(rest, ":")
		if containerPort == "" {
			containerPort, hostPort = hostPort, ""
		}
	} else {
		parts := strings.Split(spec, ":")
		switch len(parts) {
		case 1:
			containerPort = parts[0]
		case 2:
			hostPort, containerPort = parts[0], parts[1]
		case 3:
			ip, hostPort, containerPort = parts[0], parts[1], parts[2]
		default:
			// an unbracketed IPv6 address: everything before the last two colons
			i := strings.LastIndex(spec, ":")
			j := strings.LastIndex(spec[:i], ":")
			ip, hostPort, containerPort = spec[:j], spec[j+1:i], spec[i+1:]
		}
	}
	var hostAddr netip.Addr
	if ip != "" {
		a, err := netip.ParseAddr(ip)
		if err != nil {
			return nil, fmt.Errorf("invalid IP address: %s", ip)
		}
		hostAddr = a
	}
	if containerPort == "" {
		return nil, fmt.Errorf("no port specified: %s<empty>", raw)
	}
	cStart, cEnd, err := parseRange(containerPort)
	if err != nil {
		return nil, fmt.Errorf("invalid containerPort: %s", containerPort)
	}
	var hStart, hEnd int
	if hostPort != "" {
		hStart, hEnd, err = parseRange(hostPort)
		if err != nil {
			return nil, fmt.Errorf("invalid hostPort: %s", hostPort)
		}
	}
	if hostPort != "" && (cEnd-cStart) != (hEnd-hStart) {
		// a host range for one container port lets the daemon pick one of them
		if cEnd != cStart {
			return nil, fmt.Errorf("invalid ranges specified for container and host Ports: %s and %s", containerPort, hostPort)
		}
	}
	var out []PortMapping
	for i := 0; i <= cEnd-cStart; i++ {
		p, _ := network.PortFrom(uint16(cStart+i), network.IPProtocol(proto))
		hp := ""
		if hostPort != "" {
			if cEnd == cStart && hEnd != hStart {
				hp = fmt.Sprintf("%d-%d", hStart, hEnd)
			} else {
				hp = strconv.Itoa(hStart + i)
			}
		}
		out = append(out, PortMapping{Port: p, Binding: network.PortBinding{HostIP: hostAddr, HostPort: hp}})
	}
	return out, nil
}

func parseRange(s string) (int, int, error) {
	a, b, isRange := strings.Cut(s, "-")
	start, err := strconv.ParseUint(a, 10, 16)
	if err != nil {
		return 0, 0, err
	}
	end := start
	if isRange {
		end, err = strconv.ParseUint(b, 10, 16)
		if err != nil {
			return 0, 0, err
		}
		if end < start {
			return 0, 0, fmt.Errorf("invalid range %s", s)
		}
	}
	return int(start), int(end), nil
}

// ParseExpose parses one --expose value: port[-end][/proto].
func ParseExpose(raw string) ([]network.Port, error) {
	if strings.Contains(raw, ":") {
		return nil, fmt.Errorf("invalid port format for --expose: %s", raw)
	}
	r, err := network.ParsePortRange(raw)
	if err != nil {
		return nil, fmt.Errorf("invalid range format for --expose: %s, error: %w", raw, err)
	}
	var out []network.Port
	for p := range r.All() {
		out = append(out, p)
	}
	return out, nil
}

// ParseUlimit parses name=soft[:hard].
func ParseUlimit(v string) (*container.Ulimit, error) {
	return units.ParseUlimit(v)
}
