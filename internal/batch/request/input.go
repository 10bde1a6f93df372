package request

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/cn-relay-manager/cn-relay-manager/internal/secret"
)

// Input formats accepted by ParseItems.
const (
	FormatAuto  = "auto"
	FormatCSV   = "csv"
	FormatJSONL = "jsonl"
	FormatLines = "lines"
)

// Limits of the input: the batch's own limits are the batch service's (MaxItems, …).
const (
	maxLineBytes  = 1 << 20
	maxInputBytes = 32 << 20
)

// InputItem is one item read from pasted or uploaded text (crmctl's input files, the web
// pages' import form), as the API expects it. Line is where it came from (1-based).
type InputItem struct {
	Name     string   `json:"name,omitempty"`
	BaseURL  string   `json:"base_url"`
	APIKey   string   `json:"api_key"`
	Provider string   `json:"provider,omitempty"`
	Models   []string `json:"models,omitempty"`
	Line     int      `json:"-"`
}

// InputError is a problem with one line of the input. It never holds an API key.
type InputError struct {
	Line int
	Msg  string
}

func (e *InputError) Error() string {
	if e.Line <= 0 {
		return e.Msg
	}
	return fmt.Sprintf("line %d: %s", e.Line, e.Msg)
}

func lineErr(line int, format string, args ...any) error {
	return &InputError{Line: line, Msg: fmt.Sprintf(format, args...)}
}

// ParseItems reads batch items from r in the given format (auto, csv, jsonl or lines) and
// returns them with the format actually used. Every item has a base URL and a one-token key.
func ParseItems(r io.Reader, format string) ([]InputItem, string, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxInputBytes+1))
	if err != nil {
		return nil, "", fmt.Errorf("read input: %w", err)
	}
	if len(data) > maxInputBytes {
		return nil, "", &InputError{Msg: fmt.Sprintf("input is larger than %d MiB", maxInputBytes>>20)}
	}
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")) // UTF-8 BOM from spreadsheet exports
	if format == "" || format == FormatAuto {
		format = DetectFormat(data)
	}
	var items []InputItem
	switch format {
	case FormatCSV:
		items, err = parseCSV(data)
	case FormatJSONL:
		items, err = parseJSONL(data)
	case FormatLines:
		items, err = parseLines(data)
	default:
		return nil, "", fmt.Errorf("unknown input format %q (want auto, csv, jsonl or lines)", format)
	}
	if err != nil {
		return nil, format, err
	}
	if len(items) == 0 {
		return nil, format, &InputError{Msg: "the input holds no items"}
	}
	if len(items) > MaxItems {
		return nil, format, &InputError{Msg: fmt.Sprintf("a batch holds at most %d items; the input has %d", MaxItems, len(items))}
	}
	return items, format, nil
}

// DetectFormat guesses the format from the first line that is neither blank nor a comment:
// a JSON object is JSONL, a line naming base_url/url and api_key/key columns (or any line
// with a comma and no whitespace-separated fields) is CSV, anything else is plain lines.
func DetectFormat(data []byte) string {
	for _, raw := range strings.Split(string(data), "\n") {
		line := strings.TrimSpace(raw)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if strings.HasPrefix(line, "{") {
			return FormatJSONL
		}
		if rec := splitCSVLine(line); len(rec) >= 2 {
			for _, h := range rec {
				if _, ok := columnAliases[normHeader(h)]; ok {
					return FormatCSV
				}
			}
		}
		if strings.Contains(line, ",") && len(strings.Fields(line)) < 2 {
			return FormatCSV
		}
		return FormatLines
	}
	return FormatLines
}

func splitCSVLine(line string) []string {
	r := csv.NewReader(strings.NewReader(line))
	r.FieldsPerRecord = -1
	r.LazyQuotes = true
	rec, err := r.Read()
	if err != nil {
		return nil
	}
	return rec
}

// column indexes of a CSV header; -1 when absent.
type columns struct{ baseURL, apiKey, models, name, provider int }

var columnAliases = map[string]string{
	"base_url": "base_url", "url": "base_url", "baseurl": "base_url",
	"api_key": "api_key", "key": "api_key", "apikey": "api_key",
	"models": "models", "model": "models",
	"name":     "name",
	"provider": "provider",
}

func normHeader(h string) string {
	h = strings.ToLower(strings.TrimSpace(h))
	return strings.NewReplacer("-", "_", " ", "_").Replace(h)
}

func csvHeader(rec []string) (columns, error) {
	c := columns{-1, -1, -1, -1, -1}
	if len(rec) < 2 {
		return c, errors.New("a CSV header needs at least the base_url and api_key columns")
	}
	var unknown []string
	for i, h := range rec {
		canon, ok := columnAliases[normHeader(h)]
		if !ok {
			if strings.TrimSpace(h) == "" {
				unknown = append(unknown, fmt.Sprintf("column %d (empty)", i+1))
			} else {
				unknown = append(unknown, fmt.Sprintf("column %d %q", i+1, safeText(h)))
			}
			continue
		}
		var p *int
		switch canon {
		case "base_url":
			p = &c.baseURL
		case "api_key":
			p = &c.apiKey
		case "models":
			p = &c.models
		case "name":
			p = &c.name
		case "provider":
			p = &c.provider
		}
		if *p >= 0 {
			return c, fmt.Errorf("column %q appears twice in the header", canon)
		}
		*p = i
	}
	if c.baseURL < 0 || c.apiKey < 0 {
		return c, errors.New("the CSV header must name a base_url (or url) and an api_key (or key) column")
	}
	if len(unknown) > 0 {
		return c, fmt.Errorf("unknown header %s (known: base_url, api_key, models, name, provider)", strings.Join(unknown, ", "))
	}
	return c, nil
}

func parseCSV(data []byte) ([]InputItem, error) {
	r := csv.NewReader(bytes.NewReader(data))
	r.FieldsPerRecord = -1
	r.TrimLeadingSpace = true
	r.Comment = '#'
	r.ReuseRecord = true
	var cols columns
	haveHeader := false
	var items []InputItem
	for {
		rec, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				return nil, lineErr(pe.Line, "malformed CSV: %s", pe.Err.Error())
			}
			return nil, err
		}
		line, _ := r.FieldPos(0)
		if allBlank(rec) {
			continue
		}
		if !haveHeader {
			if cols, err = csvHeader(rec); err != nil {
				return nil, lineErr(line, "%s", err.Error())
			}
			haveHeader = true
			continue
		}
		width := max(cols.baseURL, cols.apiKey, cols.models, cols.name, cols.provider) + 1
		if len(rec) > width && !allBlank(rec[width:]) {
			return nil, lineErr(line, "%d fields but the header names %d columns", len(rec), width)
		}
		get := func(i int) string {
			if i < 0 || i >= len(rec) {
				return ""
			}
			return strings.TrimSpace(rec[i])
		}
		it := InputItem{BaseURL: get(cols.baseURL), APIKey: get(cols.apiKey), Name: get(cols.name), Provider: get(cols.provider),
			Models: splitModels(get(cols.models)), Line: line}
		if err := checkItem(&it); err != nil {
			return nil, err
		}
		items = append(items, it)
		if len(items) > MaxItems {
			break
		}
	}
	if !haveHeader {
		return nil, &InputError{Msg: "the CSV input has no header line"}
	}
	return items, nil
}

func allBlank(rec []string) bool {
	for _, f := range rec {
		if strings.TrimSpace(f) != "" {
			return false
		}
	}
	return true
}

// splitModels splits a models cell on spaces, ';' and ','.
func splitModels(s string) []string {
	f := strings.FieldsFunc(s, func(r rune) bool { return r == ';' || r == ',' || unicode.IsSpace(r) })
	if len(f) == 0 {
		return nil
	}
	return f
}

// jsonItem accepts models as an array (as the API) or as one space/';'-separated string.
type jsonItem struct {
	Name     string          `json:"name"`
	BaseURL  string          `json:"base_url"`
	APIKey   string          `json:"api_key"`
	Provider string          `json:"provider"`
	Models   json.RawMessage `json:"models"`
}

func parseJSONL(data []byte) ([]InputItem, error) {
	var items []InputItem
	err := eachLine(data, func(n int, line string) error {
		if strings.HasPrefix(line, "#") {
			return nil
		}
		dec := json.NewDecoder(strings.NewReader(line))
		dec.DisallowUnknownFields()
		var ji jsonItem
		if err := dec.Decode(&ji); err != nil {
			return lineErr(n, "%s", jsonErrText(err))
		}
		if dec.More() {
			return lineErr(n, "one JSON object per line expected; found more after the first")
		}
		it := InputItem{Name: strings.TrimSpace(ji.Name), BaseURL: strings.TrimSpace(ji.BaseURL), APIKey: strings.TrimSpace(ji.APIKey),
			Provider: strings.TrimSpace(ji.Provider), Line: n}
		if m := bytes.TrimSpace(ji.Models); len(m) > 0 && string(m) != "null" {
			var list []string
			var one string
			switch {
			case json.Unmarshal(m, &list) == nil:
				for _, x := range list {
					it.Models = append(it.Models, strings.TrimSpace(x))
				}
			case json.Unmarshal(m, &one) == nil:
				it.Models = splitModels(one)
			default:
				return lineErr(n, "models must be an array of strings")
			}
		}
		if err := checkItem(&it); err != nil {
			return err
		}
		items = append(items, it)
		return nil
	})
	return items, err
}

// jsonErrText describes a JSON decoding error without quoting input values.
func jsonErrText(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return fmt.Sprintf("malformed JSON at column %d", se.Offset)
	case errors.As(err, &te):
		if te.Field == "" {
			return "each line must be a JSON object"
		}
		return fmt.Sprintf("field %s must be %s", te.Field, te.Type.String())
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		f := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return fmt.Sprintf("unknown field %q (known: base_url, api_key, models, name, provider)", safeText(f))
	case errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF):
		return "truncated JSON object"
	default:
		return "malformed JSON"
	}
}

func parseLines(data []byte) ([]InputItem, error) {
	var items []InputItem
	err := eachLine(data, func(n int, line string) error {
		if strings.HasPrefix(line, "#") {
			return nil
		}
		f := strings.Fields(line)
		if len(f) < 2 {
			return lineErr(n, "expected `url key [models...]` separated by spaces")
		}
		if !LooksLikeURL(f[0]) {
			if LooksLikeURL(f[1]) {
				return lineErr(n, "the base URL comes first: `url key [models...]`")
			}
			return lineErr(n, "the first field must be the base URL (http(s)://…)")
		}
		it := InputItem{BaseURL: f[0], APIKey: f[1], Line: n}
		for _, m := range f[2:] {
			it.Models = append(it.Models, splitModels(m)...)
		}
		if err := checkItem(&it); err != nil {
			return err
		}
		items = append(items, it)
		return nil
	})
	return items, err
}

// eachLine calls fn for each non-blank line (trimmed) with its 1-based number.
func eachLine(data []byte, fn func(n int, line string) error) error {
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64*1024), maxLineBytes)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		if err := fn(n, line); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return lineErr(n+1, "line is longer than %d KiB", maxLineBytes>>10)
		}
		return err
	}
	return nil
}

// LooksLikeURL reports whether s starts with http:// or https:// (any case).
func LooksLikeURL(s string) bool {
	l := strings.ToLower(s)
	return strings.HasPrefix(l, "http://") || strings.HasPrefix(l, "https://")
}

// checkItem applies the per-item rules (CheckItem) and a first check of the base URL, so
// that errors carry the input line before anything is sent.
func checkItem(it *InputItem) error {
	fe := CheckItem(Item{Name: it.Name, BaseURL: it.BaseURL, APIKey: it.APIKey, Provider: it.Provider, Models: it.Models})
	switch {
	case fe != nil:
		return lineErr(it.Line, "%s", fe.Message)
	case it.BaseURL == "":
		return lineErr(it.Line, "base_url is empty")
	case !LooksLikeURL(it.BaseURL):
		return lineErr(it.Line, "base_url must be an http(s) URL")
	case !utf8.ValidString(it.BaseURL):
		return lineErr(it.Line, "the line is not valid UTF-8")
	}
	return nil
}

// safeText is s for quoting in a message, masked when it is long enough to be a secret.
func safeText(s string) string {
	s = strings.TrimSpace(s)
	if len(s) > 16 {
		return secret.Mask(s)
	}
	return strings.Map(func(r rune) rune {
		if unicode.IsPrint(r) {
			return r
		}
		return '?'
	}, s)
}

// Items returns the items as the request document holds them.
func Items(in []InputItem) []Item {
	out := make([]Item, len(in))
	for i, it := range in {
		out[i] = Item{Name: it.Name, BaseURL: it.BaseURL, APIKey: it.APIKey, Provider: it.Provider, Models: it.Models}
	}
	return out
}
