package health

import (
	"strconv"
	"strings"
	"time"

	"github.com/cn-relay-manager/cn-relay-manager/internal/host"
	"github.com/cn-relay-manager/cn-relay-manager/internal/upstream"
)

// HostBalance is the balance the host itself last read for a native CN-provider account,
// or nil when it has none. sub2api 0.1.179 polls the Kimi and DeepSeek balance endpoints
// of pay-as-you-go accounts every 10 minutes with the imported key and keeps the result in
// the account's extra, under the platform's prefix: <p>_balance, <p>_balance_currency,
// <p>_balance_available, <p>_balance_updated_at and <p>_balances (one entry per currency).
// A product reading is fresher when there is one; this one costs no upstream call.
func HostBalance(a *host.Account) *upstream.Balance {
	if a == nil || a.Platform == "" || a.Extra == nil {
		return nil
	}
	p := a.Platform + "_"
	amount, ok := number(a.Extra[p+"balance"])
	if !ok {
		return nil
	}
	b := &upstream.Balance{ProviderID: a.Platform, Amount: amount, Currency: "CNY", Available: amount > 0,
		Endpoint: "host:" + p + "balance", Raw: map[string]string{}}
	if c, ok := a.Extra[p+"balance_currency"].(string); ok && strings.TrimSpace(c) != "" {
		b.Currency = strings.ToUpper(strings.TrimSpace(c))
	}
	if av, ok := a.Extra[p+"balance_available"].(bool); ok {
		b.Available = av
	}
	if s, ok := a.Extra[p+"balance_updated_at"].(string); ok {
		if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
			b.ReadAt = t.UTC()
		}
	}
	if list, ok := a.Extra[p+"balances"].([]any); ok {
		for i, e := range list {
			m, _ := e.(map[string]any)
			cur, _ := m["currency"].(string)
			val, ok := number(m["balance"])
			if i == 0 || !ok || cur == "" {
				continue // the first is the primary, already in Amount
			}
			b.Others = append(b.Others, upstream.Amount{Currency: strings.ToUpper(cur), Value: val})
		}
	}
	for _, k := range []string{"balance", "balance_currency", "balance_available", "balance_updated_at", "balance_low"} {
		if v, ok := a.Extra[p+k]; ok {
			b.Raw[p+k] = text(v)
		}
	}
	return b
}

func number(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case int:
		return float64(x), true
	case int64:
		return float64(x), true
	}
	return 0, false
}

func text(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case bool:
		if x {
			return "true"
		}
		return "false"
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	}
	return ""
}
