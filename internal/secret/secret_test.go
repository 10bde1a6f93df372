package secret

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestSealOpenRoundTrip(t *testing.T) {
	b, err := NewBox("a-master-key-for-tests-only")
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := b.Seal("sk-very-secret-value-123")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(sealed, "very-secret") || !strings.HasPrefix(sealed, "v1:") {
		t.Fatalf("sealed value leaks or lacks prefix: %s", sealed)
	}
	plain, err := b.Open(sealed)
	if err != nil || plain != "sk-very-secret-value-123" {
		t.Fatalf("open = %q, %v", plain, err)
	}
	other, _ := NewBox("another-master-key-000")
	if _, err := other.Open(sealed); err == nil {
		t.Fatal("opened with the wrong key")
	}
	if _, err := b.Open("plain-text"); err == nil {
		t.Fatal("accepted an unsealed value")
	}
}

func TestFingerprintAndMask(t *testing.T) {
	b, _ := NewBox("a-master-key-for-tests-only")
	if b.Fingerprint("k1-abcdefgh") != b.Fingerprint("k1-abcdefgh") || b.Fingerprint("a") == b.Fingerprint("b") {
		t.Fatal("fingerprint not deterministic or collides")
	}
	if got := Mask("sk-1234567890abcdef"); got != "sk-123...cdef" {
		t.Fatalf("mask = %q", got)
	}
	if got := Mask("密钥密钥密钥-0123456789"); got != "密钥密钥密钥...6789" || !utf8.ValidString(got) {
		t.Errorf("multibyte mask %q", got)
	}
	if got := Mask("short"); strings.Contains(got, "short") {
		t.Fatalf("short secret shown: %q", got)
	}
	if _, err := NewBox("short"); err == nil {
		t.Fatal("short master key accepted")
	}
}

func TestLoadOrCreateMasterKey(t *testing.T) {
	dir := t.TempDir()
	k1, created, err := LoadOrCreateMasterKey("", dir)
	if err != nil || !created || len(k1) < 32 {
		t.Fatalf("create: %q %v %v", k1, created, err)
	}
	k2, created, err := LoadOrCreateMasterKey("", dir)
	if err != nil || created || k2 != k1 {
		t.Fatalf("reload: %q %v %v", k2, created, err)
	}
}
