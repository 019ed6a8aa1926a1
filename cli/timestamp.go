package cli

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// getTimestamp turns a --since/--until value into the API's "seconds.nanoseconds" form, as docker does:
// a Go duration ("10m") counts back from now, a Unix timestamp passes through, and RFC 3339 dates
// (with or without time and zone; local time when no zone) are converted.
func getTimestamp(value string, now time.Time) (string, error) {
	if d, err := time.ParseDuration(value); value != "0" && err == nil {
		return fmt.Sprintf("%d", now.Add(-d).Unix()), nil
	}
	if isUnixTimestamp(value) {
		return value, nil
	}
	layouts := []string{
		time.RFC3339Nano, time.RFC3339,
		"2006-01-02T15:04:05.999999999", "2006-01-02T15:04:05", "2006-01-02T15:04", "2006-01-02T15",
		"2006-01-02Z07:00", "2006-01-02",
	}
	for _, layout := range layouts {
		var t time.Time
		var err error
		if strings.Contains(layout, "Z07:00") {
			t, err = time.Parse(layout, value)
		} else {
			t, err = time.ParseInLocation(layout, value, time.Local)
		}
		if err == nil {
			return fmt.Sprintf("%d.%09d", t.Unix(), int64(t.Nanosecond())), nil
		}
	}
	return "", fmt.Errorf("failed to parse value as time or duration: %q", value)
}

func isUnixTimestamp(v string) bool {
	sec, frac, hasFrac := strings.Cut(v, ".")
	if _, err := strconv.ParseInt(sec, 10, 64); err != nil {
		return false
	}
	if hasFrac {
		if _, err := strconv.ParseUint(frac, 10, 64); err != nil || len(frac) > 9 {
			return false
		}
	}
	return true
}
