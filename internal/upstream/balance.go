package upstream

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/cn-relay-manager/cn-relay-manager/internal/failure"
)

// Balance endpoints. Only pay-as-you-go accounts of providers that let an ordinary API key
// read its own balance are read:
//
//   - DeepSeek  GET {root}/user/balance: is_available and balance_infos[] per currency
//     (total_balance = granted_balance + topped_up_balance; strings in the current
//     documentation, numbers in older answers).
//   - Moonshot/Kimi GET {base}/users/me/balance: data.available_balance (cash + voucher; at
//     or below 0 inference is refused), voucher_balance, cash_balance (negative = arrears).
//     No currency field: CNY on api.moonshot.cn, USD on api.moonshot.ai.
//   - SiliconFlow GET {base}/user/info: data.totalBalance = balance (granted) +
//     chargeBalance (topped up), as strings. The answer also names the account holder,
//     which is never kept. SiliconFlow announced the China site's endpoint retired; a 404
//     there reads as "not supported", not as a broken key.
//   - StepFun GET {base}/accounts: balance (available) and type prepaid|postpaid; the
//     documented total_cash_balance / total_voucher_balance are described as totals, not
//     as what remains, so they are kept as raw fields only.
//
// Not read: OpenRouter's /credits needs a management key (an imported inference key gets
// 403, which must not look like a dead key); Zhipu, MiniMax, DashScope, Ark, Qianfan and
// TokenHub document no balance endpoint for API keys; subscription-plan surfaces are billed
// by the plan.

// ErrBalanceUnsupported is the target for errors.Is of every BalanceUnsupportedError.
var ErrBalanceUnsupported = errors.New("balance cannot be read for this upstream")

// BalanceUnsupportedError says why a balance cannot be read: the provider has no balance
// endpoint for API keys, the base is a subscription plan, or the endpoint is gone. It is not
// a failure of the key.
type BalanceUnsupportedError struct {
	ProviderID string
	Reason     string
}

func (e *BalanceUnsupportedError) Error() string {
	return fmt.Sprintf("balance of %s cannot be read: %s", e.ProviderID, e.Reason)
}

// Is makes errors.Is(err, ErrBalanceUnsupported) true.
func (e *BalanceUnsupportedError) Is(target error) bool { return target == ErrBalanceUnsupported }

// Amount is money in one currency.
type Amount struct {
	Currency string  `json:"currency"`
	Value    float64 `json:"value"`
}

// Balance is one reading of an upstream account's balance.
type Balance struct {
	ProviderID string `json:"provider_id"`
	// Amount is what the account can still spend, in Currency ("CNY" or "USD").
	Amount   float64 `json:"amount"`
	Currency string  `json:"currency"`
	// Granted is the gift/voucher part and ToppedUp the paid part, when the provider
	// tells them apart (nil when it does not). ToppedUp may be negative (Kimi arrears).
	Granted  *float64 `json:"granted,omitempty"`
	ToppedUp *float64 `json:"topped_up,omitempty"`
	// Available is the provider's own word on whether paid calls are accepted now
	// (DeepSeek is_available; elsewhere Amount > 0, or a postpaid StepFun account).
	Available bool `json:"available"`
	// Others are further currencies of the same account (DeepSeek may hold CNY and USD);
	// Amount is the first the provider lists.
	Others []Amount `json:"others,omitempty"`
	// ReadAt is when the answer arrived (UTC).
	ReadAt time.Time `json:"read_at"`
	// Endpoint is the path that was read, e.g. "/user/balance".
	Endpoint string `json:"endpoint"`
	// Raw holds the provider's balance fields as it sent them (numbers as text), under
	// the provider's own names; never the account holder's name or e-mail.
	Raw map[string]string `json:"raw"`
}

// Below reports whether the balance is under threshold in its own currency, or the
// provider says paid calls are refused. A threshold <= 0 only checks Available.
func (b *Balance) Below(threshold float64) bool {
	if b == nil {
		return false
	}
	return !b.Available || (threshold > 0 && b.Amount < threshold)
}

// balanceShape is how one provider's balance is read.
type balanceShape struct {
	path string // appended to the OpenAI base ("root": to the base without a trailing /v1)
	root bool
	// private: the answer describes the account holder, so its body is not previewed.
	private bool
	parse   func(body []byte, b *Balance) error
}

var balanceShapes = map[string]balanceShape{
	"deepseek":    {path: "/user/balance", root: true, parse: parseDeepSeekBalance},
	"kimi":        {path: "/users/me/balance", parse: parseKimiBalance},
	"siliconflow": {path: "/user/info", private: true, parse: parseSiliconFlowBalance},
	"stepfun":     {path: "/accounts", parse: parseStepFunBalance},
}

// BalanceSupported reports whether the balance of a pay-as-you-go key of providerID can be
// read (a plan base or a retired endpoint may still refuse it).
func BalanceSupported(providerID string) bool {
	_, ok := balanceShapes[providerID]
	return ok
}

// Balance reads the balance of the account behind apiKey. The base URL and provider are
// taken like Probe takes them (providerID "" = detect). Errors: a *BalanceUnsupportedError
// (errors.Is ErrBalanceUnsupported) when there is nothing to read, else a *failure.Error
// classified like the probe's (invalid_key, key_banned, rate_limited,
// upstream_unreachable, upstream_incompatible for an answer that is not a balance).
//
// A balance reading is evidence, never a verdict: a provider may refuse its balance
// endpoint to a key that still serves completions, so callers must not park an account on
// a balance error alone.
func (p *Prober) Balance(ctx context.Context, baseURL, apiKey, providerID string) (*Balance, error) {
	tg, err := p.prepare(baseURL, "", apiKey, providerID)
	if err != nil {
		return nil, err
	}
	shape, ok := balanceShapes[tg.prov.ID]
	if !ok {
		return nil, &BalanceUnsupportedError{ProviderID: tg.prov.ID, Reason: "the provider offers no balance endpoint to API keys"}
	}
	if tg.plan {
		return nil, &BalanceUnsupportedError{ProviderID: tg.prov.ID, Reason: "subscription-plan keys are billed by their plan, not from a balance"}
	}
	base := tg.base
	if shape.root {
		base = strings.TrimSuffix(base, "/v1")
	}
	a, err := p.do(ctx, request{method: http.MethodGet, url: base + shape.path, key: tg.key, private: shape.private})
	if err != nil {
		return nil, err
	}
	if a.status == http.StatusNotFound || a.status == http.StatusMethodNotAllowed {
		return nil, &BalanceUnsupportedError{ProviderID: tg.prov.ID,
			Reason: fmt.Sprintf("GET %s answered HTTP %d (endpoint retired or not offered here)", shape.path, a.status)}
	}
	if fe := p.classify(tg, a); fe != nil {
		return nil, fe
	}
	if a.status != http.StatusOK {
		return nil, p.failf(tg, failure.UpstreamIncompatible, "GET %s answered HTTP %d", shape.path, a.status)
	}
	b := &Balance{ProviderID: tg.prov.ID, Currency: regionCurrency(tg.region), ReadAt: time.Now().UTC(),
		Endpoint: shape.path, Raw: map[string]string{}}
	if err := shape.parse(a.body, b); err != nil {
		return nil, p.failf(tg, failure.UpstreamIncompatible, "GET %s: the answer is not a balance: %v", shape.path, err)
	}
	return b, nil
}

// regionCurrency is the currency of a provider site without a currency field: the
// international sites bill in USD, the China sites (and bases of unknown region) in CNY.
func regionCurrency(region string) string {
	if region == "intl" {
		return "USD"
	}
	return "CNY"
}

// flexNumber is a JSON amount sent as a number or as a numeric string.
type flexNumber struct {
	text string
	val  float64
	set  bool
}

func (n *flexNumber) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if bytes.Equal(b, []byte("null")) {
		return nil
	}
	s := string(b)
	if len(b) > 0 && b[0] == '"' {
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		s = strings.TrimSpace(s)
		if s == "" {
			return nil
		}
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return fmt.Errorf("amount %q is not a number", snippet(s, 32))
	}
	n.text, n.val, n.set = s, v, true
	return nil
}

func (n flexNumber) ptr() *float64 {
	if !n.set {
		return nil
	}
	v := n.val
	return &v
}

func (n flexNumber) keep(raw map[string]string, name string) {
	if n.set {
		raw[name] = n.text
	}
}

func parseDeepSeekBalance(body []byte, b *Balance) error {
	var v struct {
		IsAvailable  *bool `json:"is_available"`
		BalanceInfos []struct {
			Currency        string     `json:"currency"`
			TotalBalance    flexNumber `json:"total_balance"`
			GrantedBalance  flexNumber `json:"granted_balance"`
			ToppedUpBalance flexNumber `json:"topped_up_balance"`
		} `json:"balance_infos"`
	}
	if err := json.Unmarshal(body, &v); err != nil {
		return err
	}
	if v.IsAvailable == nil && v.BalanceInfos == nil {
		return errors.New("neither is_available nor balance_infos")
	}
	for i, in := range v.BalanceInfos {
		cur := strings.ToUpper(strings.TrimSpace(in.Currency))
		if cur == "" {
			cur = "CNY"
		}
		pre := fmt.Sprintf("balance_infos[%d].", i)
		b.Raw[pre+"currency"] = cur
		in.TotalBalance.keep(b.Raw, pre+"total_balance")
		in.GrantedBalance.keep(b.Raw, pre+"granted_balance")
		in.ToppedUpBalance.keep(b.Raw, pre+"topped_up_balance")
		if i == 0 {
			b.Currency, b.Amount = cur, in.TotalBalance.val
			b.Granted, b.ToppedUp = in.GrantedBalance.ptr(), in.ToppedUpBalance.ptr()
			continue
		}
		b.Others = append(b.Others, Amount{Currency: cur, Value: in.TotalBalance.val})
	}
	if v.IsAvailable != nil {
		b.Available = *v.IsAvailable
		b.Raw["is_available"] = strconv.FormatBool(*v.IsAvailable)
	} else {
		b.Available = b.Amount > 0
	}
	return nil
}

func parseKimiBalance(body []byte, b *Balance) error {
	var v struct {
		Code *int64 `json:"code"`
		Data *struct {
			AvailableBalance flexNumber `json:"available_balance"`
			VoucherBalance   flexNumber `json:"voucher_balance"`
			CashBalance      flexNumber `json:"cash_balance"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &v); err != nil {
		return err
	}
	if v.Code != nil && *v.Code != 0 {
		return fmt.Errorf("code %d", *v.Code)
	}
	if v.Data == nil || !v.Data.AvailableBalance.set {
		return errors.New("no data.available_balance")
	}
	d := v.Data
	d.AvailableBalance.keep(b.Raw, "data.available_balance")
	d.VoucherBalance.keep(b.Raw, "data.voucher_balance")
	d.CashBalance.keep(b.Raw, "data.cash_balance")
	b.Amount = d.AvailableBalance.val
	b.Granted, b.ToppedUp = d.VoucherBalance.ptr(), d.CashBalance.ptr()
	b.Available = b.Amount > 0
	return nil
}

func parseSiliconFlowBalance(body []byte, b *Balance) error {
	var v struct {
		Code *int64 `json:"code"`
		Data *struct {
			Balance       flexNumber `json:"balance"`
			ChargeBalance flexNumber `json:"chargeBalance"`
			TotalBalance  flexNumber `json:"totalBalance"`
			Status        string     `json:"status"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &v); err != nil {
		return err
	}
	if v.Code != nil && *v.Code != 20000 && *v.Code != 0 {
		return fmt.Errorf("code %d", *v.Code)
	}
	if v.Data == nil || !v.Data.TotalBalance.set {
		return errors.New("no data.totalBalance")
	}
	d := v.Data
	d.TotalBalance.keep(b.Raw, "data.totalBalance")
	d.Balance.keep(b.Raw, "data.balance")
	d.ChargeBalance.keep(b.Raw, "data.chargeBalance")
	if d.Status != "" {
		b.Raw["data.status"] = snippet(d.Status, 32)
	}
	b.Amount = d.TotalBalance.val
	b.Granted, b.ToppedUp = d.Balance.ptr(), d.ChargeBalance.ptr()
	b.Available = b.Amount > 0
	return nil
}

func parseStepFunBalance(body []byte, b *Balance) error {
	var v struct {
		Object              string     `json:"object"`
		Type                string     `json:"type"`
		Balance             flexNumber `json:"balance"`
		TotalCashBalance    flexNumber `json:"total_cash_balance"`
		TotalVoucherBalance flexNumber `json:"total_voucher_balance"`
	}
	if err := json.Unmarshal(body, &v); err != nil {
		return err
	}
	if !v.Balance.set {
		return errors.New("no balance")
	}
	v.Balance.keep(b.Raw, "balance")
	v.TotalCashBalance.keep(b.Raw, "total_cash_balance")
	v.TotalVoucherBalance.keep(b.Raw, "total_voucher_balance")
	if v.Type != "" {
		b.Raw["type"] = snippet(v.Type, 32)
	}
	b.Amount = v.Balance.val
	b.Available = b.Amount > 0 || v.Type == "postpaid"
	return nil
}
