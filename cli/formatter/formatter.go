package formatter

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"reflect"
	"strings"
	"text/tabwriter"
	"text/template"
	"unicode/utf8"
)

// Format names a --format value: "table ...", "json", "{{...}}", or empty for the command's default.
type Format string

const (
	// TableFormatKey is the prefix that turns a template into a table with a header row.
	TableFormatKey = "table"
	// JSONFormatKey prints each object as one line of JSON.
	JSONFormatKey = "json"
	// JSONFormat is the template "json" stands for.
	JSONFormat = "{{json .}}"
)

// IsTable reports whether f starts with "table".
func (f Format) IsTable() bool { return strings.HasPrefix(string(f), TableFormatKey) }

// IsJSON reports whether f is the "json" shorthand.
func (f Format) IsJSON() bool { return string(f) == JSONFormatKey }

// funcs are the helpers docker offers in --format templates.
var funcs = template.FuncMap{
	"json": func(v any) string {
		b, _ := json.Marshal(v)
		return string(b)
	},
	"split":    strings.Split,
	"join":     strings.Join,
	"title":    strings.Title, //nolint:staticcheck // docker's template func
	"lower":    strings.ToLower,
	"upper":    strings.ToUpper,
	"pad":      func(s string, l, r int) string { return strings.Repeat(" ", l) + s + strings.Repeat(" ", r) },
	"truncate": truncate,
	"println":  fmt.Sprintln,
}

func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:n])
}

// ParseTemplate parses a --format template with docker's helper functions.
func ParseTemplate(format string) (*template.Template, error) {
	t, err := template.New("").Funcs(funcs).Parse(format)
	if err != nil {
		return nil, fmt.Errorf("failed to parse template: %w", err)
	}
	return t, nil
}

// Write renders rows with format. A "table" format gets a header row made from headers
// (field name -> column title) and columns aligned like docker's (tabwriter 10,1,3).
func Write(out io.Writer, format Format, headers map[string]string, rows []any) error {
	tmplText := string(format)
	table := format.IsTable()
	switch {
	case format.IsJSON():
		tmplText = JSONFormat
	case table:
		tmplText = strings.TrimSpace(strings.TrimPrefix(tmplText, TableFormatKey))
		// docker lets users write "\t" literally on the command line
		tmplText = strings.NewReplacer(`\t`, "\t", `\n`, "\n").Replace(tmplText)
	default:
		tmplText = strings.NewReplacer(`\t`, "\t", `\n`, "\n").Replace(tmplText)
	}
	tmpl, err := ParseTemplate(tmplText + "\n")
	if err != nil {
		return err
	}
	buf := &bytes.Buffer{}
	for _, r := range rows {
		if format.IsJSON() {
			r = FieldMap(r)
		}
		if err := tmpl.Execute(buf, r); err != nil {
			return fmt.Errorf("failed to execute template: %w", err)
		}
	}
	if !table {
		_, err := out.Write(buf.Bytes())
		return err
	}
	tw := tabwriter.NewWriter(out, 10, 1, 3, ' ', 0)
	hbuf := &bytes.Buffer{}
	if err := tmpl.Execute(hbuf, headerRow(headers)); err == nil {
		_, _ = tw.Write(hbuf.Bytes())
	}
	_, _ = tw.Write(buf.Bytes())
	return tw.Flush()
}

// headerRow is the data a table's header line is rendered from: column titles by field name,
// and docker's titles for the fields that take an argument.
type headerRow map[string]string

// Label titles a label column by the label's last dotted part, as docker does.
func (h headerRow) Label(name string) string {
	parts := strings.Split(name, ".")
	return strings.NewReplacer("-", " ", "_", " ").Replace(parts[len(parts)-1])
}

// FieldMap turns a row context into a map of its template fields (its exported methods that take
// no argument and return one value), which is what `--format json` prints, as docker does.
// Values that are not such contexts are returned unchanged.
func FieldMap(row any) any {
	v := reflect.ValueOf(row)
	t := v.Type()
	m := map[string]any{}
	for i := 0; i < t.NumMethod(); i++ {
		meth := t.Method(i)
		if meth.Name == "MarshalJSON" || meth.Type.NumIn() != 1 || meth.Type.NumOut() != 1 {
			continue
		}
		m[meth.Name] = v.Method(i).Call(nil)[0].Interface()
	}
	if len(m) == 0 {
		return row
	}
	return m
}

// Ellipsis shortens s to at most max display runes, marking the cut with "…", as docker does.
func Ellipsis(s string, max int) string {
	if max <= 0 {
		return ""
	}
	r := []rune(s)
	if len(r) <= max {
		return s
	}
	if max == 1 {
		return string(r[:1])
	}
	return string(r[:max-1]) + "…"
}

// TruncateID returns the 12-character short form of an ID, without any "sha256:" prefix.
func TruncateID(id string) string {
	if i := strings.IndexRune(id, ':'); i >= 0 {
		id = id[i+1:]
	}
	if len(id) > 12 {
		id = id[:12]
	}
	return id
}

// NaturalLess orders strings the way docker sorts names: runs of digits compare as numbers,
// everything else byte by byte ("web2" before "web10").
func NaturalLess(a, b string) bool {
	for a != "" && b != "" {
		ad, bd := isDigit(a[0]), isDigit(b[0])
		switch {
		case ad && bd:
			na, ra := digitRun(a)
			nb, rb := digitRun(b)
			ta, tb := strings.TrimLeft(na, "0"), strings.TrimLeft(nb, "0")
			if len(ta) != len(tb) {
				return len(ta) < len(tb)
			}
			if ta != tb {
				return ta < tb
			}
			if len(na) != len(nb) {
				return len(na) < len(nb)
			}
			a, b = ra, rb
		case a[0] != b[0]:
			return a[0] < b[0]
		default:
			a, b = a[1:], b[1:]
		}
	}
	return len(a) < len(b)
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func digitRun(s string) (string, string) {
	i := 0
	for i < len(s) && isDigit(s[i]) {
		i++
	}
	return s[:i], s[i:]
}
