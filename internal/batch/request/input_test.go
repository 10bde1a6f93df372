package request

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"unicode"
)

func TestParseItems(t *testing.T) {
	const k1, k2 = "sk-aaaaaaaaaaaaaaaa0001", "sk-bbbbbbbbbbbbbbbb0002"
	tests := []struct {
		name, in, format string
		wantFormat       string
		want             []InputItem
	}{
		{name: "csv header aliases and models separators", in: "URL,Key,Models,Name,Provider\n" +
			"https://api.deepseek.com," + k1 + ",deepseek-flash;deepseek-pro,ds one,deepseek\n" +
			"\n# comment\n" +
			"https://api.moonshot.cn/v1 , " + k2 + " ,kimi-k2.6 kimi-k3,,\n",
			wantFormat: FormatCSV, want: []InputItem{
				{Name: "ds one", BaseURL: "https://api.deepseek.com", APIKey: k1, Provider: "deepseek", Models: []string{"deepseek-flash", "deepseek-pro"}, Line: 2},
				{BaseURL: "https://api.moonshot.cn/v1", APIKey: k2, Models: []string{"kimi-k2.6", "kimi-k3"}, Line: 5},
			}},
		{name: "csv BOM, quoted, reordered, short rows", in: "\ufeffapi_key,base_url,name\n\"" + k1 + "\",\"https://x.example/v1\",\"a, b\"\n" + k2 + ",https://y.example\n",
			wantFormat: FormatCSV, want: []InputItem{
				{Name: "a, b", BaseURL: "https://x.example/v1", APIKey: k1, Line: 2},
				{BaseURL: "https://y.example", APIKey: k2, Line: 3},
			}},
		{name: "csv multi-line quoted cell keeps line numbers", in: "base_url,api_key,name\nhttps://x.example," + k1 + ",\"two\nlines\"\nhttps://y.example," + k2 + ",z\n",
			wantFormat: FormatCSV, want: []InputItem{
				{Name: "two\nlines", BaseURL: "https://x.example", APIKey: k1, Line: 2},
				{Name: "z", BaseURL: "https://y.example", APIKey: k2, Line: 4},
			}},
		{name: "jsonl", in: `{"base_url":"https://api.deepseek.com","api_key":"` + k1 + `","models":["deepseek-flash"],"name":"n","provider":"deepseek"}` + "\n\n" +
			`{"base_url":"https://x.example","api_key":"` + k2 + `","models":"a;b c"}` + "\n",
			wantFormat: FormatJSONL, want: []InputItem{
				{Name: "n", BaseURL: "https://api.deepseek.com", APIKey: k1, Provider: "deepseek", Models: []string{"deepseek-flash"}, Line: 1},
				{BaseURL: "https://x.example", APIKey: k2, Models: []string{"a", "b", "c"}, Line: 3},
			}},
		{name: "lines", in: "# url key models\n\nhttps://api.deepseek.com " + k1 + " deepseek-flash deepseek-pro\r\n   https://x.example\t" + k2 + "\n",
			wantFormat: FormatLines, want: []InputItem{
				{BaseURL: "https://api.deepseek.com", APIKey: k1, Models: []string{"deepseek-flash", "deepseek-pro"}, Line: 3},
				{BaseURL: "https://x.example", APIKey: k2, Line: 4},
			}},
		{name: "lines with commas in models", in: "https://x.example " + k1 + " a,b\n", wantFormat: FormatLines,
			want: []InputItem{{BaseURL: "https://x.example", APIKey: k1, Models: []string{"a", "b"}, Line: 1}}},
		{name: "forced lines format", in: "https://x.example " + k1 + "\n", format: FormatLines, wantFormat: FormatLines,
			want: []InputItem{{BaseURL: "https://x.example", APIKey: k1, Line: 1}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, f, err := ParseItems(strings.NewReader(tc.in), tc.format)
			if err != nil {
				t.Fatal(err)
			}
			if f != tc.wantFormat {
				t.Errorf("format %s, want %s", f, tc.wantFormat)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestParseItemsErrors(t *testing.T) {
	const key = "sk-secretsecretsecret9999"
	tests := []struct {
		name, in, format string
		line             int
		msg              string
	}{
		{"csv missing key column", "base_url,name\nhttps://x.example,a\n", "", 1, "api_key"},
		{"csv unknown column", "base_url,api_key,modle\nhttps://x.example," + key + ",m\n", "", 1, `unknown header column 3 "modle"`},
		{"csv duplicate column", "url,base_url,key\n", "", 1, "twice"},
		{"csv too many fields", "base_url,api_key\nhttps://x.example," + key + ",extra\n", "", 2, "3 fields"},
		{"csv empty key", "base_url,api_key\nhttps://x.example,\n", "", 2, "api_key is empty"},
		{"csv bad quote", "base_url,api_key\n\"https://x.example\"x," + key + "\n", "", 2, "malformed CSV"},
		{"csv no header (key as header is masked)", "https://x.example," + key + "\n", FormatCSV, 1, "base_url"},
		{"jsonl unknown field", `{"base_url":"https://x.example","api_key":"` + key + `"}` + "\n" + `{"url":"https://x.example"}`, "", 2, `unknown field "url"`},
		{"jsonl bad json", `{"base_url":"https://x.example","api_key":"` + key + `"}` + "\n\n" + `{"base_url":`, "", 3, "JSON"},
		{"jsonl two objects", `{"base_url":"https://x.example","api_key":"` + key + `"} {}`, "", 1, "one JSON object"},
		{"jsonl wrong type", `{"base_url":"https://x.example","api_key":123}`, "", 1, "api_key"},
		{"jsonl models not strings", `{"base_url":"https://x.example","api_key":"` + key + `","models":[1]}`, "", 1, "models"},
		{"lines one field", "https://x.example\n", "", 1, "url key"},
		{"lines swapped", "\n" + key + " https://x.example\n", "", 2, "base URL comes first"},
		{"lines not a url", "https://ok.example k1-aaaaaaaaaaaa\nftp://x " + key + "\n", "", 2, "base URL"},
		{"too many models", "https://x.example " + key + strings.Repeat(" m", 101) + "\n", "", 1, "at most 100 models"},
		{"lines NUL in key", "https://ok.example " + key + "\n\nhttps://x.example sk-abc\x00def0123456789\n", "", 3, "api_key contains the control character U+0000"},
		{"lines ESC in model", "https://x.example " + key + " deepseek-flash m\x1b[0m\n", "", 1, "model 2 contains the control character U+001B"},
		{"csv NUL in name", "base_url,api_key,name\nhttps://x.example," + key + ",a\x00b\n", "", 2, "name contains the control character U+0000"},
		{"csv BEL in url", "base_url,api_key\nhttps://x.example/\x07," + key + "\n", "", 2, "base_url contains the control character U+0007"},
		{"jsonl escaped NUL in provider", `{"base_url":"https://x.example","api_key":"` + key + `","provider":"deep\u0000seek"}`, "", 1, "provider contains the control character U+0000"},
		{"jsonl escaped NUL in model", "\n" + `{"base_url":"https://x.example","api_key":"` + key + `","models":["a","b\u0000"]}`, "", 2, "model 2 contains"},
		{"jsonl tab in key", `{"base_url":"https://x.example","api_key":"sk-abc\tdef0123456789"}`, "", 1, "api_key contains the control character U+0009"},
		{"empty", "\n# only a comment\n", "", 0, "no items"},
		{"unknown format", "x", "xml", 0, "unknown input format"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := ParseItems(strings.NewReader(tc.in), tc.format)
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %q does not contain %q", err, tc.msg)
			}
			var ie *InputError
			if tc.line > 0 && (!errors.As(err, &ie) || ie.Line != tc.line) {
				t.Errorf("error %q: want line %d", err, tc.line)
			}
			if strings.Contains(err.Error(), key) {
				t.Errorf("error shows the key: %q", err)
			}
		})
	}
}

func TestDetectFormat(t *testing.T) {
	for in, want := range map[string]string{
		"":                                       FormatLines,
		"# c\n\n{\"base_url\":1}":                FormatJSONL,
		"base_url,api_key\n":                     FormatCSV,
		"Base URL , API Key, Models\n":           FormatCSV,
		"url;key\n":                              FormatLines,
		"https://x,sk-1\n":                       FormatCSV,
		"https://x sk-1 a,b\n":                   FormatLines,
		"url,key,modle\n":                        FormatCSV,
		"\n  # c\nhttps://api.deepseek.com sk\n": FormatLines,
	} {
		if got := DetectFormat([]byte(in)); got != want {
			t.Errorf("DetectFormat(%q) = %s, want %s", in, got, want)
		}
	}
}

func FuzzParseItems(f *testing.F) {
	for _, s := range []string{
		"base_url,api_key,models,name,provider\nhttps://x.example,sk-1,a;b,n,p\n",
		"url,key\n\"https://x\",\"k\"\n",
		`{"base_url":"https://x.example","api_key":"k","models":["m"]}` + "\n",
		`{"base_url":"https://x.example","api_key":"k","models":"a b"}`,
		"# c\nhttps://x.example k m1 m2\n\n",
		"\ufeffhttps://x,k\n",
		"{\n",
		"url,key\n\"unterminated\n",
	} {
		for _, format := range []string{FormatAuto, FormatCSV, FormatJSONL, FormatLines} {
			f.Add(s, format)
		}
	}
	f.Fuzz(func(t *testing.T, in, format string) {
		items, used, err := ParseItems(strings.NewReader(in), format)
		if err != nil {
			if items != nil {
				t.Fatalf("items with an error")
			}
			var ie *InputError
			if errors.As(err, &ie) && ie.Line < 0 {
				t.Fatalf("negative line %d", ie.Line)
			}
			return
		}
		switch used {
		case FormatCSV, FormatJSONL, FormatLines:
		default:
			t.Fatalf("format %q", used)
		}
		if len(items) == 0 || len(items) > MaxItems {
			t.Fatalf("%d items", len(items))
		}
		last := 0
		for _, it := range items {
			if it.Line <= last {
				t.Fatalf("line numbers not increasing: %d after %d", it.Line, last)
			}
			last = it.Line
			if !LooksLikeURL(it.BaseURL) || it.APIKey == "" || strings.IndexFunc(it.APIKey, unicode.IsSpace) >= 0 || len(it.APIKey) > MaxKeyLen {
				t.Fatalf("invalid item accepted: %+v", it)
			}
			if len(it.Models) > MaxModels {
				t.Fatalf("%d models", len(it.Models))
			}
			for _, m := range it.Models {
				if m == "" {
					t.Fatalf("empty model in %+v", it)
				}
			}
			if it.Line > strings.Count(in, "\n")+1 {
				t.Fatalf("line %d beyond the input", it.Line)
			}
		}
	})
}
