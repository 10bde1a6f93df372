package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"

	"github.com/cn-relay-manager/cn-relay-manager/internal/catalog"
	"github.com/cn-relay-manager/cn-relay-manager/internal/egress"
	"github.com/cn-relay-manager/cn-relay-manager/internal/secret"
	"github.com/cn-relay-manager/cn-relay-manager/internal/store"
)

// FuzzSubmitDecode feeds arbitrary bodies to the submit decoder and validator: they must
// never panic, and every refusal must be a 400 that names a field or says what is wrong.
func FuzzSubmitDecode(f *testing.F) {
	for _, seed := range []string{
		`{"host_id":"h","items":[{"base_url":"https://api.deepseek.com","api_key":"sk-1","models":["deepseek-flash"]}]}`,
		`{"host_id":"h","mode":"subscription","window":{"deadline_s":60,"schedule_s":[2,5]},"items":[{"base_url":"https://api.moonshot.cn/v1/chat/completions","api_key":"k"}]}`,
		`{"host_id":"h","items":[{"base_url":"ftp://x","api_key":"k"}]}`,
		`{"host_id":"h","items":[{"base_url":"http://169.254.169.254","api_key":"k"}]}`,
		`{"items":[]}`, `[]`, `{"host_id":1}`, `{"host_id":"h","items":[{"api_key":"a b"}]}`, `{"x":1}`, `{`,
	} {
		f.Add([]byte(seed))
	}
	box, _ := secret.NewBox("fuzz-master-key-00000000")
	s := &Server{Box: box, Catalog: catalog.Default(), Egress: egress.Policy{}}
	h := &store.Host{ID: "h"}
	f.Fuzz(func(t *testing.T, body []byte) {
		var req batchRequest
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			var ae *APIError
			if !errors.As(decodeError(err), &ae) || ae.Status != 400 {
				t.Fatalf("decoder error not a 400: %v", err)
			}
			return
		}
		b, items, notes, err := s.buildBatch(h, &req)
		if err != nil {
			var ae *APIError
			if !errors.As(err, &ae) || ae.Status != 400 || ae.Message == "" {
				t.Fatalf("refusal is not a 400 with a message: %#v", err)
			}
			return
		}
		if b == nil || len(items) != len(req.Items) || len(notes) != len(items) {
			t.Fatalf("accepted batch lost items: %d of %d (%d notes)", len(items), len(req.Items), len(notes))
		}
		for _, it := range items {
			if !bytes.HasPrefix([]byte(it.APIKeyEnc), []byte("v1:")) {
				t.Fatal("key not sealed")
			}
			if it.NormalizedURL == "" || it.Provider == "" || it.DetectedBy == "" {
				t.Fatalf("accepted item without base or provider: %+v", it)
			}
		}
	})
}
