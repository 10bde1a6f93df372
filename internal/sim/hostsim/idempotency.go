package hostsim

import (
	"bytes"
	"crypto/sha256"
	"io"
	"net/http"
	"net/http/httptest"
)

type idemEntry struct {
	hash   [32]byte
	status int
	ctype  string
	body   []byte
}

// withIdempotency runs h under the Idempotency-Key contract of the hosts:
// the same key and body replay the stored response with
// X-Idempotency-Replayed: true; the same key with another body is a 409.
// scope separates routes and actors. Caller holds s.mu.
func (s *Server) withIdempotency(w http.ResponseWriter, r *http.Request, scope string, h func(w http.ResponseWriter, r *http.Request)) {
	key := r.Header.Get("Idempotency-Key")
	if key == "" {
		h(w, r)
		return
	}
	body, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(body))
	sum := sha256.Sum256(canonicalJSON(body))
	id := scope + "\x00" + key
	if e, found := s.idem[id]; found {
		if e.hash != sum {
			typedErr(w, 409, "IDEMPOTENCY_KEY_CONFLICT", "idempotency key reused with different payload")
			return
		}
		w.Header().Set("Content-Type", e.ctype)
		w.Header().Set("X-Idempotency-Replayed", "true")
		w.WriteHeader(e.status)
		_, _ = w.Write(e.body)
		return
	}
	rec := httptest.NewRecorder()
	h(rec, r)
	res := rec.Result()
	for k, v := range res.Header {
		w.Header()[k] = v
	}
	w.WriteHeader(res.StatusCode)
	_, _ = w.Write(rec.Body.Bytes())
	if res.StatusCode >= 200 && res.StatusCode < 300 {
		s.idem[id] = &idemEntry{hash: sum, status: res.StatusCode, ctype: res.Header.Get("Content-Type"), body: rec.Body.Bytes()}
	}
}
