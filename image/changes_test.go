package image

import (
	"bytes"
	"io"
	"reflect"
	"strings"
	"testing"

	"github.com/berth-dev/berth/errdefs"
	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	"github.com/opencontainers/go-digest"
)

func TestApplyChanges(t *testing.T) {
	cases := []struct {
		changes []string
		check   func(c dockerspec.DockerOCIImageConfig) bool
		bad     bool
	}{
		{[]string{`CMD ["sh","-c","x"]`}, func(c dockerspec.DockerOCIImageConfig) bool {
			return reflect.DeepEqual(c.Cmd, []string{"sh", "-c", "x"})
		}, false},
		{[]string{`CMD echo hi`}, func(c dockerspec.DockerOCIImageConfig) bool {
			return reflect.DeepEqual(c.Cmd, []string{"/bin/sh", "-c", "echo hi"})
		}, false},
		{[]string{`ENTRYPOINT ["/init"]`}, func(c dockerspec.DockerOCIImageConfig) bool {
			return reflect.DeepEqual(c.Entrypoint, []string{"/init"})
		}, false},
		{[]string{"ENV A=b C=d", "ENV A=z"}, func(c dockerspec.DockerOCIImageConfig) bool { return reflect.DeepEqual(c.Env, []string{"A=z", "C=d"}) }, false},
		{[]string{"EXPOSE 80 53/udp"}, func(c dockerspec.DockerOCIImageConfig) bool {
			_, a := c.ExposedPorts["80/tcp"]
			_, b := c.ExposedPorts["53/udp"]
			return a && b
		}, false},
		{[]string{`LABEL a=b "c d"=e`}, func(c dockerspec.DockerOCIImageConfig) bool { return c.Labels["a"] == "b" && c.Labels["c d"] == "e" }, false},
		{[]string{"ENV H=/home", "WORKDIR $H/x"}, func(c dockerspec.DockerOCIImageConfig) bool { return c.WorkingDir == "/home/x" }, false},
		{[]string{"USER nobody:nogroup"}, func(c dockerspec.DockerOCIImageConfig) bool { return c.User == "nobody:nogroup" }, false},
		{[]string{"WORKDIR /a", "WORKDIR b"}, func(c dockerspec.DockerOCIImageConfig) bool { return c.WorkingDir == "/a/b" }, false},
		{[]string{"VOLUME /data /logs"}, func(c dockerspec.DockerOCIImageConfig) bool { return len(c.Volumes) == 2 }, false},
		{[]string{"STOPSIGNAL SIGINT"}, func(c dockerspec.DockerOCIImageConfig) bool { return c.StopSignal == "SIGINT" }, false},
		{[]string{"ONBUILD RUN make"}, func(c dockerspec.DockerOCIImageConfig) bool {
			return reflect.DeepEqual(c.OnBuild, []string{"RUN make"})
		}, false},
		{[]string{"HEALTHCHECK --interval=5s CMD true"}, func(c dockerspec.DockerOCIImageConfig) bool {
			return c.Healthcheck != nil && c.Healthcheck.Test[0] == "CMD-SHELL" && c.Healthcheck.Interval.Seconds() == 5
		}, false},
		{[]string{""}, func(c dockerspec.DockerOCIImageConfig) bool { return true }, false},
		{[]string{"RUN rm -rf /"}, nil, true},
		{[]string{"FROM scratch"}, nil, true},
		{[]string{"COPY a b"}, nil, true},
		{[]string{"BOGUS x"}, nil, true},
		{[]string{"ENV"}, nil, true},
	}
	for _, c := range cases {
		var cfg dockerspec.DockerOCIImageConfig
		err := ApplyChanges(&cfg, c.changes)
		if c.bad {
			if !errdefs.IsInvalidArgument(err) {
				t.Errorf("%q: err %v, want InvalidArgument", c.changes, err)
			}
			continue
		}
		if err != nil || !c.check(cfg) {
			t.Errorf("%q: %+v %v", c.changes, cfg, err)
		}
	}
}

func TestDecompressAndChainIDs(t *testing.T) {
	raw := []byte(strings.Repeat("layer data ", 100))
	bz := func() []byte {
		// No bzip2 writer in the standard library: a tiny known stream.
		return []byte{0x42, 0x5a, 0x68, 0x39, 0x17, 0x72, 0x45, 0x38, 0x50, 0x90, 0, 0, 0, 0}
	}()
	for _, c := range []struct {
		name string
		in   []byte
		want Compression
	}{
		{"plain", raw, Uncompressed},
		{"gzip", compress(t, "gzip", raw), Gzip},
		{"zstd", compress(t, "zstd", raw), Zstd},
		{"bzip2", bz, Bzip2},
	} {
		r, comp, err := Decompress(bytes.NewReader(c.in))
		if err != nil || comp != c.want {
			t.Fatalf("%s: %v %v", c.name, comp, err)
		}
		out, err := io.ReadAll(r)
		if c.want != Bzip2 && (err != nil || !bytes.Equal(out, raw)) {
			t.Errorf("%s: round trip failed: %v", c.name, err)
		}
	}
	a, b := digest.FromString("a"), digest.FromString("b")
	ids := ChainIDs([]digest.Digest{a, b})
	if ids[0] != a.String() || ids[1] != digest.FromString(a.String()+" "+b.String()).String() {
		t.Errorf("chain ids %v", ids)
	}
}
