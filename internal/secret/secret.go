// Package secret keeps credentials unreadable at rest (AES-256-GCM under a master key),
// masks them for display and fingerprints them for duplicate detection without ever
// storing the plain value.
package secret

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// prefix marks sealed values so that a plain value stored by mistake is detected on read.
const prefix = "v1:"

// Box seals and opens secrets with one master key.
type Box struct {
	aead    cipher.AEAD
	fpKey   []byte
	derived []byte
}

// NewBox derives the encryption key from master: a 32-byte base64 or 64-char hex value
// is used as is; any other string of at least 16 characters is hashed with SHA-256.
func NewBox(master string) (*Box, error) {
	if len(master) < 16 {
		return nil, errors.New("master key must be at least 16 characters")
	}
	key := decodeKey(master)
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("master key: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("master key: %w", err)
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte("cn-relay-manager fingerprint"))
	mac2 := hmac.New(sha256.New, key)
	mac2.Write([]byte("cn-relay-manager derived"))
	return &Box{aead: aead, fpKey: mac.Sum(nil), derived: mac2.Sum(nil)}, nil
}

func decodeKey(master string) []byte {
	if b, err := base64.StdEncoding.DecodeString(master); err == nil && len(b) == 32 {
		return b
	}
	if b, err := hex.DecodeString(master); err == nil && len(b) == 32 {
		return b
	}
	sum := sha256.Sum256([]byte(master))
	return sum[:]
}

// Seal encrypts plain; an empty value stays empty.
func (b *Box) Seal(plain string) (string, error) {
	if plain == "" {
		return "", nil
	}
	nonce := make([]byte, b.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", fmt.Errorf("seal: %w", err)
	}
	out := b.aead.Seal(nonce, nonce, []byte(plain), nil)
	return prefix + base64.RawStdEncoding.EncodeToString(out), nil
}

// Open decrypts a value produced by Seal.
func (b *Box) Open(sealed string) (string, error) {
	if sealed == "" {
		return "", nil
	}
	if !strings.HasPrefix(sealed, prefix) {
		return "", errors.New("open: value is not sealed")
	}
	raw, err := base64.RawStdEncoding.DecodeString(strings.TrimPrefix(sealed, prefix))
	if err != nil || len(raw) < b.aead.NonceSize() {
		return "", errors.New("open: malformed sealed value")
	}
	n := b.aead.NonceSize()
	plain, err := b.aead.Open(nil, raw[:n], raw[n:], nil)
	if err != nil {
		return "", errors.New("open: wrong master key or corrupted value")
	}
	return string(plain), nil
}

// Fingerprint is a keyed hash of a secret: equal secrets give equal fingerprints under the
// same master key, and the fingerprint reveals nothing without it.
func (b *Box) Fingerprint(plain string) string {
	mac := hmac.New(sha256.New, b.fpKey)
	mac.Write([]byte(plain))
	return hex.EncodeToString(mac.Sum(nil))[:32]
}

// Derive returns a stable, secret-dependent token for label (used for deterministic
// custom end-user keys and passwords that must survive a lost database row).
func (b *Box) Derive(label string, n int) string {
	mac := hmac.New(sha256.New, b.derived)
	mac.Write([]byte(label))
	s := hex.EncodeToString(mac.Sum(nil))
	if n > len(s) {
		n = len(s)
	}
	return s[:n]
}

// Mask shows the first 6 and last 4 characters of a secret (product §10); short secrets
// are hidden entirely.
func Mask(s string) string {
	if s == "" {
		return ""
	}
	r := []rune(s)
	if len(r) <= 12 {
		return strings.Repeat("*", 8)
	}
	// Cut on characters, not bytes: half a multibyte character is not text (PostgreSQL
	// refuses to store it).
	return string(r[:6]) + "..." + string(r[len(r)-4:])
}

// LoadOrCreateMasterKey returns configured when set; otherwise it reads, or creates with
// mode 0600, a random key file in dir. Used only by the all-in-one mode and the demo.
func LoadOrCreateMasterKey(configured, dir string) (key string, created bool, err error) {
	if configured != "" {
		return configured, false, nil
	}
	path := filepath.Join(dir, "master.key")
	if b, err := os.ReadFile(path); err == nil {
		return strings.TrimSpace(string(b)), false, nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", false, fmt.Errorf("create %s: %w", dir, err)
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return "", false, err
	}
	key = base64.StdEncoding.EncodeToString(raw)
	if err := os.WriteFile(path, []byte(key+"\n"), 0o600); err != nil {
		return "", false, fmt.Errorf("write %s: %w", path, err)
	}
	return key, true, nil
}

// RandomToken returns n random bytes hex encoded (API tokens, passwords).
func RandomToken(n int) string {
	raw := make([]byte, n)
	if _, err := rand.Read(raw); err != nil {
		panic(fmt.Sprintf("crypto/rand: %v", err))
	}
	return hex.EncodeToString(raw)
}

// Rotation moves sealed values from one master key to another.
type Rotation struct{ Old, New *Box }

// Reseal opens with the old key and seals with the new one.
func (r Rotation) Reseal(sealed string) (string, error) {
	plain, err := r.Old.Open(sealed)
	if err != nil {
		return "", err
	}
	return r.New.Seal(plain)
}

// Refingerprint returns the new-key fingerprint of a value sealed with the old key.
func (r Rotation) Refingerprint(sealed string) (string, error) {
	plain, err := r.Old.Open(sealed)
	if err != nil {
		return "", err
	}
	return r.New.Fingerprint(plain), nil
}
