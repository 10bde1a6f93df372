package notify

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

// TitlePrefix starts every message title, so that a DingTalk or Feishu bot guarded by a
// custom keyword ("自定义关键词") can be set to accept "cn-relay-manager".
const TitlePrefix = "[cn-relay-manager] "

// Bounds that keep every format under its platform's size limit (WeCom markdown 4096
// bytes, Slack section text 3000 characters, Feishu 20 KB per request).
const (
	maxValue  = 300 // characters of one value (a reason, a name)
	maxTitle  = 150 // characters of the title (Slack's header block limit)
	maxDetail = 8   // failure classes listed for a batch
)

// message is the text of an event, independent of the format: a title, labelled lines
// and an optional link.
type message struct {
	title string
	lines []line
	link  string
	open  string // label of the link
	id    string // the delivery ID, shown small
	idLbl string
}

type line struct{ label, value string }

// labels are the words of the messages per language.
type labels struct {
	host, batch, status, items, provider, account, key, class, reason, since, balance,
	threshold, readAt, actions, detail, delivery, open, parked, yes, item string
	batchTitle, failingTitle, parkedTitle, balanceTitle, recoveredTitle, provenTitle string
	itemsFmt                                                                         string
}

var texts = map[string]labels{
	"en": {
		host: "Host", batch: "Batch", status: "Status", items: "Items", provider: "Provider",
		account: "Account", key: "Key", class: "Failure class", reason: "Reason", since: "Since",
		balance: "Balance", threshold: "Threshold", readAt: "Read at", actions: "Actions",
		detail: "Detail", delivery: "Delivery", open: "Open", parked: "Set unschedulable", yes: "yes", item: "item",
		batchTitle:     "Batch %s finished: %d ready, %d failed",
		failingTitle:   "Account %s is failing: %s",
		parkedTitle:    "Account %s is failing (%s) and was set unschedulable",
		balanceTitle:   "Balance low: %s has %s %s left (threshold %s)",
		recoveredTitle: "Account %s recovered",
		provenTitle:    "Account %s recovered and proven through the gateway",
		itemsFmt:       "%d total, %d ready, %d failed, %d cancelled",
	},
	"zh": {
		host: "主机", batch: "批次", status: "状态", items: "条目", provider: "供应商",
		account: "账号", key: "密钥", class: "失败类别", reason: "原因", since: "开始于",
		balance: "余额", threshold: "阈值", readAt: "读取时间", actions: "操作",
		detail: "详情", delivery: "投递 ID", open: "打开", parked: "已设为不可调度", yes: "是", item: "条目",
		batchTitle:     "批次 %s 已完成：%d 个就绪，%d 个失败",
		failingTitle:   "账号 %s 异常：%s",
		parkedTitle:    "账号 %s 异常（%s），已设为不可调度",
		balanceTitle:   "余额不足：%s 剩余 %s %s（阈值 %s）",
		recoveredTitle: "账号 %s 已恢复",
		provenTitle:    "账号 %s 已恢复，并已通过网关验证",
		itemsFmt:       "共 %d，就绪 %d，失败 %d，取消 %d",
	},
}

// compose builds the message of a valid event.
func compose(e Event, lang string) message {
	l, ok := texts[lang]
	if !ok {
		l = texts["en"]
	}
	m := message{link: e.URL, open: l.open, id: e.ID, idLbl: l.delivery}
	add := func(label, value string) {
		if value = clean(value); value != "" {
			m.lines = append(m.lines, line{label, value})
		}
	}
	add(l.host, e.Host)
	switch e.Type {
	case BatchFinished:
		b := e.Batch
		m.title = fmt.Sprintf(l.batchTitle, nameOr(b.Name, b.ID), b.Ready, b.Failed)
		add(l.batch, batchLabel(b))
		add(l.status, b.Status)
		add(l.items, fmt.Sprintf(l.itemsFmt, b.Total, b.Ready, b.Failed, b.Cancelled))
		add(l.class, classList(b.Classes))
	case AccountFailing:
		a := e.Account
		if a.Parked {
			m.title = fmt.Sprintf(l.parkedTitle, accountLabel(a), a.Class)
		} else {
			m.title = fmt.Sprintf(l.failingTitle, accountLabel(a), a.Class)
		}
		addAccount(add, l, a)
		add(l.class, a.Class)
		add(l.reason, a.Reason)
		if a.Since != nil {
			add(l.since, stamp(*a.Since))
		}
		if a.Parked {
			add(l.parked, l.yes)
		}
	case BalanceLow:
		a, b := e.Account, e.Balance
		m.title = fmt.Sprintf(l.balanceTitle, accountLabel(a), money(b.Amount), b.Currency, money(b.Threshold))
		addAccount(add, l, a)
		add(l.balance, money(b.Amount)+" "+b.Currency)
		add(l.threshold, money(b.Threshold)+" "+b.Currency)
		if !b.ReadAt.IsZero() {
			add(l.readAt, stamp(b.ReadAt))
		}
	case RecoveryDone:
		a, r := e.Account, e.Recovery
		if r.Proven {
			m.title = fmt.Sprintf(l.provenTitle, accountLabel(a))
		} else {
			m.title = fmt.Sprintf(l.recoveredTitle, accountLabel(a))
		}
		addAccount(add, l, a)
		add(l.actions, strings.Join(r.Actions, ", "))
		add(l.detail, r.Detail)
	}
	m.title = TitlePrefix + cut(clean(m.title), maxTitle-len(TitlePrefix))
	return m
}

func addAccount(add func(string, string), l labels, a *Account) {
	add(l.provider, a.Provider)
	add(l.account, accountRef(a, l.item))
	add(l.key, a.KeyMasked)
}

// plain renders the message as plain text (the generic format's "text" field).
func (m message) plain() string {
	var b strings.Builder
	b.WriteString(m.title)
	for _, ln := range m.lines {
		fmt.Fprintf(&b, "\n%s: %s", ln.label, ln.value)
	}
	if m.link != "" {
		fmt.Fprintf(&b, "\n%s: %s", m.open, m.link)
	}
	return b.String()
}

func nameOr(name, id string) string {
	if strings.TrimSpace(name) != "" {
		return name
	}
	return id
}

func batchLabel(b *Batch) string {
	if b.Name != "" && b.Name != b.ID {
		return b.Name + " (" + b.ID + ")"
	}
	return b.ID
}

func accountLabel(a *Account) string {
	switch {
	case a.Name != "":
		return a.Name
	case a.HostAccountID != 0:
		return "#" + strconv.FormatInt(a.HostAccountID, 10)
	case a.ItemID != "":
		return a.ItemID
	}
	return "?"
}

// accountRef is the account's name with its host id and item, as far as known.
func accountRef(a *Account, item string) string {
	var parts []string
	if a.Name != "" {
		parts = append(parts, a.Name)
	}
	if a.HostAccountID != 0 {
		parts = append(parts, "#"+strconv.FormatInt(a.HostAccountID, 10))
	}
	if a.ItemID != "" {
		parts = append(parts, item+" "+a.ItemID)
	}
	return strings.Join(parts, " ")
}

// classList renders "no_quota 3, invalid_key 1", most frequent first, at most maxDetail.
func classList(c map[string]int) string {
	type kv struct {
		k string
		n int
	}
	var list []kv
	for k, n := range c {
		if n > 0 {
			list = append(list, kv{k, n})
		}
	}
	sort.Slice(list, func(i, j int) bool {
		if list[i].n != list[j].n {
			return list[i].n > list[j].n
		}
		return list[i].k < list[j].k
	})
	var parts []string
	for i, x := range list {
		if i == maxDetail {
			parts = append(parts, "…")
			break
		}
		parts = append(parts, fmt.Sprintf("%s %d", x.k, x.n))
	}
	return strings.Join(parts, ", ")
}

func money(v float64) string { return strconv.FormatFloat(v, 'f', 2, 64) }

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// clean makes a value one line and bounds its length.
func clean(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	return cut(s, maxValue)
}

// cut shortens s to n runes.
func cut(s string, n int) string {
	if n <= 0 {
		return ""
	}
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}
