package command

import (
	"reflect"
	"testing"
)

func TestParseLogOpts(t *testing.T) {
	tests := []struct {
		flags []string
		want  map[string]string
		ok    bool
	}{
		{nil, nil, true},
		{[]string{"max-size=10m", "max-file=3"}, map[string]string{"max-size": "10m", "max-file": "3"}, true},
		{[]string{"max-size=1m", "max-size=2m"}, map[string]string{"max-size": "2m"}, true},
		{[]string{"tag="}, map[string]string{"tag": ""}, true},
		{[]string{"max-size"}, nil, false},
		{[]string{"=10m"}, nil, false},
	}
	for _, tt := range tests {
		got, err := parseLogOpts(tt.flags)
		if (err == nil) != tt.ok || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("parseLogOpts(%q) = %v, %v; want %v, ok=%t", tt.flags, got, err, tt.want, tt.ok)
		}
	}
}
