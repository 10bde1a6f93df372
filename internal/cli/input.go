package cli

import (
	"io"
	"strings"

	"github.com/cn-relay-manager/cn-relay-manager/internal/batch/request"
	"github.com/cn-relay-manager/cn-relay-manager/internal/secret"
)

// The input formats and their parser are internal/batch/request's, shared with the web
// pages' import form: one implementation of what a pasted or uploaded line means.
const (
	FormatAuto  = request.FormatAuto
	FormatCSV   = request.FormatCSV
	FormatJSONL = request.FormatJSONL
	FormatLines = request.FormatLines
)

// Item is one batch item read from the input, with its line.
type Item = request.InputItem

// InputError is a problem with one line of the input. It never holds an API key.
type InputError = request.InputError

// ParseItems reads batch items from r in the given format (auto, csv, jsonl or lines).
func ParseItems(r io.Reader, format string) ([]Item, string, error) {
	return request.ParseItems(r, format)
}

func looksLikeURL(s string) bool { return request.LooksLikeURL(strings.TrimSpace(s)) }

// Mask shows the first 6 and last 4 characters of a secret, exactly as the API does.
func Mask(s string) string { return secret.Mask(s) }
