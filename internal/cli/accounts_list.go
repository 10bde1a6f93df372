package cli

import (
	"encoding/json"
	"flag"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// accountView is what crmctl shows of an account's latest verdict.
type accountView struct {
	ItemID          string     `json:"item_id"`
	BatchID         string     `json:"batch_id"`
	HostAccountID   string     `json:"host_account_id"`
	AccountName     string     `json:"account_name"`
	Provider        string     `json:"provider"`
	KeyMasked       string     `json:"key_masked"`
	Status          string     `json:"status"`
	Class           string     `json:"class"`
	Reason          string     `json:"reason"`
	Since           time.Time  `json:"since"`
	Parked          bool       `json:"parked"`
	Hold            bool       `json:"hold"`
	BalanceAmount   *float64   `json:"balance_amount"`
	BalanceCurrency string     `json:"balance_currency"`
	BalanceAt       *time.Time `json:"balance_at"`
	BalanceLow      bool       `json:"balance_low"`
	Recent          string     `json:"recent"`
	LastCheckID     string     `json:"last_check_id"`
	LastAction      string     `json:"last_action"`
	CheckedAt       time.Time  `json:"checked_at"`
}

// balanceText is "12.50 CNY" (with " low" when under the threshold), "-" when none.
func balanceText(amount *float64, currency string, low bool) string {
	if amount == nil {
		return "-"
	}
	s := strconv.FormatFloat(*amount, 'f', 2, 64) + " " + currency
	if low {
		s += " (low)"
	}
	return s
}

// sparkline draws the recent statuses (h, d, f, oldest first) as bars: ▁ healthy,
// ▄ degraded, █ failing.
func sparkline(recent string) string {
	var b strings.Builder
	for _, r := range recent {
		switch r {
		case 'h':
			b.WriteString("▁")
		case 'd':
			b.WriteString("▄")
		case 'f':
			b.WriteString("█")
		default:
			b.WriteString("?")
		}
	}
	if b.Len() == 0 {
		return "-"
	}
	return b.String()
}

func accountMarks(a accountView) string {
	var m []string
	if a.Parked {
		m = append(m, "parked")
	}
	if a.Hold {
		m = append(m, "hold")
	}
	return strings.Join(m, ",")
}

func (e *env) accountsList(fs *flag.FlagSet) func(pos []string) error {
	host := fs.String("host", "", "the host (ID or name); required")
	failing := fs.Bool("failing", false, "only failing accounts")
	status := fs.String("status", "", "only accounts in this state (healthy, degraded, failing)")
	limit := fs.Int("limit", 0, "show at most this many accounts (0 = all, failing first)")
	return func(pos []string) error {
		if len(pos) > 0 {
			return usagef("accounts list takes no arguments (the host is --host)")
		}
		if *host == "" {
			return usagef("accounts list needs --host")
		}
		if err := e.finish(); err != nil {
			return err
		}
		hostID, err := e.client.ResolveHost(e.ctx, *host)
		if err != nil {
			return err
		}
		q := url.Values{}
		if *failing {
			q.Set("failing", "true")
		}
		if *status != "" {
			q.Set("status", *status)
		}
		var all []accountView
		var raws []json.RawMessage
		total := 0
		for page := 1; ; page++ {
			q.Set("page", strconv.Itoa(page))
			q.Set("page_size", "1000")
			var resp struct {
				Items []json.RawMessage `json:"items"`
				Total int               `json:"total"`
			}
			if _, err := e.client.ListAccounts(e.ctx, hostID, q, &resp); err != nil {
				return err
			}
			total = resp.Total
			for _, raw := range resp.Items {
				var a accountView
				if err := json.Unmarshal(raw, &a); err != nil {
					return fmt.Errorf("unexpected account in the answer: %w", err)
				}
				all, raws = append(all, a), append(raws, raw)
			}
			if len(resp.Items) == 0 || len(all) >= resp.Total || (*limit > 0 && len(all) >= *limit) {
				break
			}
		}
		if *limit > 0 && len(all) > *limit {
			all, raws = all[:*limit], raws[:*limit]
		}
		if e.json() {
			return e.printValue(map[string]any{"items": raws, "total": total})
		}
		if len(all) == 0 {
			if *failing || *status != "" {
				fmt.Fprintln(e.stdout, "no account matches (accounts are listed once a re-verification has checked them)")
			} else {
				fmt.Fprintln(e.stdout, "no account checked yet: crmctl accounts verify --host "+*host)
			}
			return nil
		}
		tw := newTable(e.stdout)
		fmt.Fprintln(tw, "ITEM\tACCOUNT\tPROVIDER\tHEALTH\tCLASS\tBALANCE\tLAST CHECK\tHISTORY\tMARKS\tREASON")
		for _, a := range all {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", a.ItemID, oneLine(a.AccountName), dash(a.Provider), a.Status, dash(a.Class),
				balanceText(a.BalanceAmount, a.BalanceCurrency, a.BalanceLow), fmtTime(&a.CheckedAt), sparkline(a.Recent), dash(accountMarks(a)),
				truncateCell(oneLine(a.Reason), 120))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		if len(all) < total {
			fmt.Fprintf(e.stdout, "%d of %d accounts shown\n", len(all), total)
		}
		return nil
	}
}

func truncateCell(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return dash(s)
	}
	return string(r[:n-1]) + "…"
}
