package evidence

import (
	"context"
	"strings"
	"testing"
)

func TestRedactRemovesWholeAndFragments(t *testing.T) {
	key := "sk-abcdef0123456789XYZ"
	cases := map[string]string{
		"key " + key + " end":          "key **** end",
		"tail 0123456789XYZ here":      "tail **** here",
		"short 0123456 is kept":        "short 0123456 is kept",
		"nothing to hide":              "nothing to hide",
		"twice " + key + "/" + key:     "twice ****/****",
		"Your api key: ****6789XYZ ok": "Your api key: ****6789XYZ ok",
	}
	for in, want := range cases {
		if got := Redact(in, key); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
	if got := Redact("abc", ""); got != "abc" {
		t.Errorf("empty secret changed text: %q", got)
	}
}

func TestRecordGoesToContextRecorder(t *testing.T) {
	var r Recorder
	ctx := WithRecorder(context.Background(), &r)
	Record(ctx, Exchange{Method: "GET", Path: "/x", Status: 200, Preview: strings.Repeat("a", PreviewLimit+10)})
	Record(context.Background(), Exchange{Method: "GET"}) // no recorder: dropped
	ex := r.Exchanges()
	if len(ex) != 1 || ex[0].Path != "/x" || len(ex[0].Preview) != PreviewLimit {
		t.Fatalf("unexpected exchanges: %+v", ex)
	}
}
