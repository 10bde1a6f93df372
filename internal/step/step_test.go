package step

import "testing"

func TestTaskIDRoundTrip(t *testing.T) {
	id := TaskID(AccessClosure, "01a24e31-1d81-7b84-a0d6-27d415f42e85", 7)
	if id != "access-closure:01a24e31-1d81-7b84-a0d6-27d415f42e85:7" {
		t.Fatalf("TaskID = %q", id)
	}
	name, item, seq, ok := ParseTaskID(id)
	if !ok || name != AccessClosure || item != "01a24e31-1d81-7b84-a0d6-27d415f42e85" || seq != 7 {
		t.Fatalf("ParseTaskID(%q) = %q %q %d %v", id, name, item, seq, ok)
	}
	for _, bad := range []string{"", "import", "import:item", "nostep:item:1", "import::1", "import:item:-1", "import:item:x", "import:a:b:1"} {
		if _, _, _, ok := ParseTaskID(bad); ok {
			t.Errorf("ParseTaskID(%q) accepted", bad)
		}
	}
}
