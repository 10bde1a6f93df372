package notify

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Headers of generic deliveries.
const (
	HeaderEvent     = "X-CRM-Event"
	HeaderDelivery  = "X-CRM-Delivery"
	HeaderTimestamp = "X-CRM-Timestamp"
	HeaderSignature = "X-CRM-Signature"
)

// userAgent names the sender to receivers.
const userAgent = "cn-relay-manager-webhook/1"

// Request is one formatted delivery attempt. URL may hold the token and the signature:
// it is a credential like the target's.
type Request struct {
	DeliveryID string
	Event      EventType
	Kind       Kind
	URL        string
	Header     http.Header
	Body       []byte
}

// String shows the delivery without credentials.
func (r Request) String() string {
	return fmt.Sprintf("%s delivery %s of %s to %s", r.Kind, r.DeliveryID, r.Event, RedactURL(r.URL))
}

// Format builds the request that delivers e to t at time now. It is pure: the same
// arguments give the same request. Signatures carry now (Feishu and DingTalk refuse a
// signature older than an hour), so format again for every attempt rather than storing
// a request for later.
func Format(e Event, t Target, now time.Time) (Request, error) {
	if err := t.Validate(); err != nil {
		return Request{}, err
	}
	if err := e.Validate(); err != nil {
		return Request{}, err
	}
	m := compose(e, t.Lang)
	r := Request{DeliveryID: e.ID, Event: e.Type, Kind: t.Kind, URL: strings.TrimSpace(t.URL),
		Header: http.Header{"Content-Type": {"application/json; charset=utf-8"}, "User-Agent": {userAgent}}}
	var body any
	switch t.Kind {
	case Generic:
		body = genericBody{Event: e, Title: m.title, Text: m.plain()}
	case Feishu:
		body = feishuBody(m, t.Lang, t.Secret, now)
	case DingTalk:
		body = dingTalkBody(m)
		if t.Secret != "" {
			u, err := signDingTalkURL(r.URL, t.Secret, now)
			if err != nil {
				return Request{}, err
			}
			r.URL = u
		}
	case WeCom:
		body = map[string]any{"msgtype": "markdown", "markdown": map[string]string{"content": weComMarkdown(m)}}
	case Slack:
		body = slackBody(m)
	}
	// Markdown and HTML in the texts ("> ", "<font>") stay readable in the body.
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(body); err != nil {
		return Request{}, fmt.Errorf("notify: encode %s body: %w", t.Kind, err)
	}
	b := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	r.Body = b
	// Receivers that do not read the body's id still see the delivery ID.
	r.Header.Set(HeaderDelivery, e.ID)
	r.Header.Set(HeaderEvent, string(e.Type))
	if t.Kind == Generic && t.Secret != "" {
		ts := strconv.FormatInt(now.Unix(), 10)
		r.Header.Set(HeaderTimestamp, ts)
		r.Header.Set(HeaderSignature, signGeneric(t.Secret, ts, b))
	}
	return r, nil
}

// genericBody is the event itself plus its title and a plain-text rendering.
type genericBody struct {
	Event
	Title string `json:"title"`
	Text  string `json:"text"`
}

// feishuBody is a rich-text ("post") message; with a secret it carries timestamp and
// sign in the body, as Feishu's signature setting requires.
func feishuBody(m message, lang, secret string, now time.Time) map[string]any {
	var content [][]map[string]string
	for _, ln := range m.lines {
		content = append(content, []map[string]string{{"tag": "text", "text": ln.label + ": " + ln.value}})
	}
	if m.link != "" {
		content = append(content, []map[string]string{{"tag": "a", "text": m.open, "href": m.link}})
	}
	content = append(content, []map[string]string{{"tag": "text", "text": m.idLbl + ": " + m.id}})
	locale := "en_us"
	if lang == "zh" {
		locale = "zh_cn"
	}
	body := map[string]any{
		"msg_type": "post",
		"content": map[string]any{"post": map[string]any{
			locale: map[string]any{"title": m.title, "content": content},
		}},
	}
	if secret != "" {
		ts := strconv.FormatInt(now.Unix(), 10)
		body["timestamp"] = ts
		body["sign"] = signFeishu(secret, ts)
	}
	return body
}

// dingTalkBody is a markdown message; its title is what the notification preview shows.
func dingTalkBody(m message) map[string]any {
	var b strings.Builder
	b.WriteString("#### " + m.title + "\n\n")
	for _, ln := range m.lines {
		fmt.Fprintf(&b, "- **%s**: %s\n", ln.label, ln.value)
	}
	if m.link != "" {
		fmt.Fprintf(&b, "\n[%s](%s)\n", m.open, m.link)
	}
	fmt.Fprintf(&b, "\n%s: %s\n", m.idLbl, m.id)
	return map[string]any{"msgtype": "markdown", "markdown": map[string]string{"title": m.title, "text": b.String()}}
}

// weComMarkdown is the content of a WeCom markdown message (at most 4096 bytes).
func weComMarkdown(m message) string {
	var b strings.Builder
	b.WriteString("**" + m.title + "**\n")
	for _, ln := range m.lines {
		fmt.Fprintf(&b, "> %s: %s\n", ln.label, ln.value)
	}
	if m.link != "" {
		fmt.Fprintf(&b, "[%s](%s)\n", m.open, m.link)
	}
	fmt.Fprintf(&b, "<font color=\"comment\">%s: %s</font>", m.idLbl, m.id)
	return b.String()
}

// slackBody uses Block Kit with the title as the notification fallback text.
func slackBody(m message) map[string]any {
	var b strings.Builder
	for i, ln := range m.lines {
		if i > 0 {
			b.WriteString("\n")
		}
		fmt.Fprintf(&b, "*%s:* %s", slackEscape(ln.label), slackEscape(ln.value))
	}
	if m.link != "" {
		fmt.Fprintf(&b, "\n<%s|%s>", slackEscape(m.link), slackEscape(m.open))
	}
	blocks := []map[string]any{
		{"type": "header", "text": map[string]any{"type": "plain_text", "text": m.title}},
		{"type": "section", "text": map[string]any{"type": "mrkdwn", "text": b.String()}},
		{"type": "context", "elements": []map[string]any{{"type": "mrkdwn", "text": slackEscape(m.idLbl + ": " + m.id)}}},
	}
	return map[string]any{"text": m.title, "blocks": blocks}
}

// slackEscape escapes the three characters Slack's mrkdwn treats as control characters.
func slackEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

// signDingTalkURL adds timestamp (milliseconds) and sign to the robot URL.
func signDingTalkURL(raw, secret string, now time.Time) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("notify: DingTalk robot URL cannot be parsed")
	}
	ts := strconv.FormatInt(now.UnixMilli(), 10)
	q := u.Query()
	q.Set("timestamp", ts)
	q.Set("sign", signDingTalk(secret, ts))
	u.RawQuery = q.Encode()
	return u.String(), nil
}
