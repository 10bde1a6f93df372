package catalog

import "testing"

// Benchmarks of the catalog's per-item work: every import step normalises the base URL,
// detects the provider and resolves the requested models. Run with
//
//	go test ./internal/catalog -run '^$' -bench . -benchmem

var benchURLs = []string{
	"https://api.deepseek.com",
	"https://api.deepseek.com/v1/chat/completions",
	"  https://api.moonshot.cn/v1/  ",
	"https://dashscope.aliyuncs.com/compatible-mode/v1/chat/completions",
	"https://open.bigmodel.cn/api/paas/v4",
	"http://127.0.0.1:8080/relay/v1",
}

func BenchmarkNormalizeURL(b *testing.B) {
	c := Default()
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		_, _ = c.NormalizeURL(benchURLs[i%len(benchURLs)])
	}
}

func BenchmarkDetect(b *testing.B) {
	c := Default()
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		_ = c.Detect(benchURLs[i%len(benchURLs)], "sk-0123456789abcdef0123456789abcdef", "")
	}
}

func BenchmarkProviderLookup(b *testing.B) {
	c := Default()
	ids := []string{"deepseek", "kimi", "glm", "qwen", "minimax", "nope"}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		_, _ = c.Provider(ids[i%len(ids)])
	}
}

func BenchmarkResolveModels(b *testing.B) {
	c := Default()
	p, ok := c.Provider("kimi")
	if !ok {
		b.Skip("no kimi in the catalog")
	}
	var available []string
	for _, m := range p.Models {
		available = append(available, m.ID)
	}
	requested := []string{"kimi-k2-6", "Kimi-K3 ", "moonshot-v1-8k"}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		_ = c.ResolveModels("kimi", requested, available)
	}
}
