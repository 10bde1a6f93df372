package catalog

import (
	"strings"
	"unicode"
)

// sepKey folds case and drops separators and whitespace, so that "kimi-k2-6", "Kimi K2.6"
// and "kimi_k2.6" compare equal to "kimi-k2.6". Digits stay in order, so versions that
// differ only by a separator collide on purpose; different versions never do.
func sepKey(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range strings.ToLower(s) {
		switch {
		case r == '-' || r == '_' || r == '.' || r == '/' || r == ':' || unicode.IsSpace(r):
			continue
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// aliasMatches reports whether the alias pattern names s: separator-insensitive equality,
// or, for a pattern ending in "*", a case-insensitive prefix match ("hunyuan-*").
func aliasMatches(alias, s string) bool {
	if p, ok := strings.CutSuffix(alias, "*"); ok {
		return p != "" && strings.HasPrefix(strings.ToLower(s), strings.ToLower(p))
	}
	return sepKey(alias) == sepKey(s)
}

// lastSegment returns the part after the last "/" (vendor prefix of relay ids).
func lastSegment(s string) string {
	if i := strings.LastIndexByte(s, '/'); i >= 0 {
		return s[i+1:]
	}
	return s
}

// levenshtein is the edit distance over bytes; model ids are ASCII in practice and the
// inputs are short, so the quadratic algorithm with two rows is enough. Inputs longer than
// maxFuzzyLen are not compared (returns a large distance) to bound work on hostile input.
func levenshtein(a, b string) int {
	if len(a) > maxFuzzyLen || len(b) > maxFuzzyLen {
		return 1 << 30
	}
	if a == b {
		return 0
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

const maxFuzzyLen = 128

// fuzzyThreshold is the largest edit distance accepted for a name of length n: one typo
// for short names, at most three for long ones, so "deepseek-flsh" resolves but "glm-5"
// never becomes "qwen-max".
func fuzzyThreshold(n int) int {
	switch {
	case n < 6:
		return 0
	case n < 12:
		return 1
	case n < 20:
		return 2
	default:
		return 3
	}
}

// nonChatMarkers flag model ids that are not chat models (embeddings, speech, images),
// used for providers the catalog does not know.
var nonChatMarkers = []string{
	"embed", "rerank", "tts", "whisper", "asr", "speech", "audio", "image", "moderation",
	"bge-", "ocr", "cogview", "cogvideo", "seedream", "seedance", "flux", "stable-diffusion",
	"sdxl", "kolors", "wanx", "paraformer", "sensevoice", "cosyvoice", "video", "dall-e",
}

func looksLikeChat(id string) bool {
	l := strings.ToLower(id)
	if l == "" {
		return false
	}
	for _, m := range nonChatMarkers {
		if strings.Contains(l, m) {
			return false
		}
	}
	return true
}
