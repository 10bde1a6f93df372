package upstreamsim

import (
	"fmt"
	"net/http"

	"github.com/cn-relay-manager/cn-relay-manager/internal/catalog"
)

// serveBalance answers a balance endpoint in the provider's documented shape. The
// simulated account holds amount, all of it topped up (no gift or voucher part).
func (s *Server) serveBalance(w http.ResponseWriter, p *catalog.Provider, amount float64) {
	switch p.ID {
	case "deepseek":
		// Amounts are strings in the current documentation.
		writeJSON(w, http.StatusOK, map[string]any{
			"is_available": amount > 0,
			"balance_infos": []map[string]any{{
				"currency":          "CNY",
				"total_balance":     fmt.Sprintf("%.2f", amount),
				"granted_balance":   "0.00",
				"topped_up_balance": fmt.Sprintf("%.2f", amount),
			}},
		})
	case "kimi":
		// cash_balance may be negative (arrears); available_balance is then the voucher part.
		available := amount
		if available < 0 {
			available = 0
		}
		writeJSON(w, http.StatusOK, map[string]any{
			"code": 0,
			"data": map[string]any{
				"available_balance": available,
				"voucher_balance":   0,
				"cash_balance":      amount,
			},
			"scode":  "0x0",
			"status": true,
		})
	case "siliconflow":
		// The real answer also describes the account holder; the client must drop that.
		writeJSON(w, http.StatusOK, map[string]any{
			"code": 20000, "message": "OK", "status": true,
			"data": map[string]any{
				"id": "", "name": "sim-holder", "image": "", "email": "sim-holder@example.com",
				"isAdmin": false, "balance": "0.00", "status": "normal", "introduction": "", "role": "",
				"chargeBalance": fmt.Sprintf("%.2f", amount),
				"totalBalance":  fmt.Sprintf("%.2f", amount),
			},
		})
	case "stepfun":
		writeJSON(w, http.StatusOK, map[string]any{
			"object": "account", "type": "prepaid",
			"balance": amount, "total_cash_balance": amount, "total_voucher_balance": 0,
		})
	default:
		http.Error(w, "404 page not found", http.StatusNotFound)
	}
}
