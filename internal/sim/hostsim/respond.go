package hostsim

import (
	"encoding/json"
	"net/http"
)

const jsonCT = "application/json; charset=utf-8"

// writeJSON writes v with the gin-style JSON content type used by the hosts.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = 500, []byte(`{"code":500,"message":"internal error"}`)
	}
	w.Header().Set("Content-Type", jsonCT)
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// ok writes the success envelope.
func ok(w http.ResponseWriter, data any) {
	writeJSON(w, 200, map[string]any{"code": 0, "message": "success", "data": data})
}

// typedErr writes a handler/service error: integer code plus reason.
func typedErr(w http.ResponseWriter, status int, reason, msg string) {
	writeJSON(w, status, map[string]any{"code": status, "message": msg, "reason": reason})
}

// bindErr writes a request-binding error (no reason).
func bindErr(w http.ResponseWriter, msg string) {
	writeJSON(w, 400, map[string]any{"code": 400, "message": "Invalid request: " + msg})
}

// internalErr writes the untyped 500 the hosts use for several validation failures.
func internalErr(w http.ResponseWriter) {
	writeJSON(w, 500, map[string]any{"code": 500, "message": "internal error"})
}

// mwErr writes a middleware error: string code, no reason.
func mwErr(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]any{"code": code, "message": msg})
}

// gwErr writes an OpenAI-style gateway error.
func gwErr(w http.ResponseWriter, status int, typ, msg string) {
	writeJSON(w, status, map[string]any{"error": map[string]any{"message": msg, "type": typ}})
}

// notFoundText is gin's default unknown-route answer.
func notFoundText(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "text/plain")
	w.WriteHeader(404)
	_, _ = w.Write([]byte("404 page not found"))
}

// deleted writes the delete success envelope.
func deleted(w http.ResponseWriter, msg string) {
	ok(w, map[string]any{"message": msg})
}
