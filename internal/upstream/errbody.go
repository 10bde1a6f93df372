package upstream

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
)

// errorInfo is what an error answer says, whatever envelope the provider uses.
type errorInfo struct {
	present  bool     // the body carries an error (matters for HTTP 200 answers)
	code     string   // provider error/business code, as text
	typ      string   // error type
	message  string   // human-readable message
	codes    []string // all codes found, including "(NNNN)" suffixes in messages
	baseResp bool     // MiniMax base_resp envelope
}

// text is the lower-case haystack the keyword rules search.
func (e errorInfo) text() string {
	return strings.ToLower(e.code + " " + e.typ + " " + e.message)
}

var parenCode = regexp.MustCompile(`\((\d{3,6})\)`)

// parseErrorBody understands the error envelopes the providers use: OpenAI {"error":{...}},
// Anthropic {"type":"error","error":{...}}, MiniMax base_resp, SiliconFlow/DashScope
// native {"code","message"}, Qianfan v1 {"error_code","error_msg"}, {"error":"text"}.
// Non-JSON bodies (HTML error pages, "404 page not found") become the message.
func parseErrorBody(body []byte) errorInfo {
	var info errorInfo
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil || m == nil {
		info.message = snippet(string(body), 300)
		return info
	}
	if ev, ok := m["error"]; ok && ev != nil {
		switch e := ev.(type) {
		case map[string]any:
			info.present = true
			info.message = str(e["message"])
			info.typ = str(e["type"])
			info.code = str(e["code"])
			if info.code == "" {
				info.code = str(e["upstream_code"])
			}
		case string:
			if e != "" {
				info.present = true
				info.message = e
			}
		case bool:
			info.present = e
		}
	}
	if br, ok := m["base_resp"].(map[string]any); ok {
		if c := str(br["status_code"]); c != "" && c != "0" {
			info.present, info.baseResp = true, true
			info.code = c
			if info.message == "" {
				info.message = str(br["status_msg"])
			}
		}
	}
	if c := str(m["error_code"]); c != "" && c != "0" {
		info.present = true
		info.code = c
		if info.message == "" {
			info.message = str(m["error_msg"])
		}
	}
	if !info.present {
		_, hasChoices := m["choices"]
		_, hasOutput := m["output"]
		_, hasData := m["data"]
		if c := str(m["code"]); c != "" && c != "0" && c != "200" && c != "success" && !hasChoices && !hasOutput {
			// SiliconFlow {"code":30014,"data":null,...} and DashScope native {"code":"Arrearage"}.
			if d, ok := m["data"]; !hasData || d == nil || !ok {
				info.present = true
				info.code = c
				info.message = str(m["message"])
			}
		}
	}
	if info.message == "" {
		info.message = str(m["message"])
	}
	if info.code != "" {
		info.codes = append(info.codes, info.code)
	}
	if isDigits(info.typ) {
		// Zhipu's Anthropic path puts the business code in error.type ("1113").
		info.codes = append(info.codes, info.typ)
	}
	for _, sm := range parenCode.FindAllStringSubmatch(info.message, -1) {
		info.codes = append(info.codes, sm[1])
	}
	return info
}

// str renders a JSON scalar as text; numbers lose their ".0".
func str(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case float64:
		if x == float64(int64(x)) {
			return fmt.Sprintf("%d", int64(x))
		}
		return fmt.Sprintf("%g", x)
	case bool:
		if x {
			return "true"
		}
		return "false"
	default:
		return ""
	}
}

// snippet shortens s for messages, on a rune boundary.
func snippet(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !isRuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

func isRuneStart(b byte) bool { return b&0xC0 != 0x80 }

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}
