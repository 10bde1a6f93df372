package cli

import (
	"reflect"
	"testing"

	"github.com/cn-relay-manager/cn-relay-manager/internal/batch/request"
)

func TestParseTargetGroup(t *testing.T) {
	ok := map[[2]string]request.TargetGroup{
		{"per_provider", ""}:           {Mode: "per_provider"},
		{"per_provider", "crm-"}:       {Mode: "per_provider", Prefix: "crm-"},
		{"per_item", ""}:               {Mode: "per_item"},
		{"existing:sold deepseek", ""}: {Mode: "existing", Name: "sold deepseek"},
		{"existing:42", ""}:            {Mode: "existing", ID: 42},
		{" existing: kimi ", ""}:       {Mode: "existing", Name: "kimi"},
	}
	for in, want := range ok {
		got, err := parseTargetGroup(in[0], in[1])
		if err != nil || !reflect.DeepEqual(*got, want) {
			t.Errorf("%q prefix %q: %+v %v, want %+v", in[0], in[1], got, err, want)
		}
	}
	for _, bad := range [][2]string{{"existing", ""}, {"existing:", ""}, {"pooled", ""}, {"per_item", "x-"}, {"existing:g", "x-"}, {"per_provider:x", ""}} {
		if got, err := parseTargetGroup(bad[0], bad[1]); err == nil {
			t.Errorf("%q prefix %q accepted: %+v", bad[0], bad[1], got)
		}
	}
}
