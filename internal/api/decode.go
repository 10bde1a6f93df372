package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/gofiber/fiber/v2"
)

// decodeStrict decodes a JSON body, refusing unknown fields and trailing data, and turns
// decoder errors into a 400 naming the field.
func decodeStrict(c *fiber.Ctx, dst any) error {
	body := c.Body()
	if len(bytes.TrimSpace(body)) == 0 {
		return badField("", "request body must be a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return decodeError(err)
	}
	if err := dec.Decode(&struct{}{}); err != io.EOF {
		return badField("", "request body must hold exactly one JSON object")
	}
	return nil
}

func decodeError(err error) error {
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.As(err, &te):
		return badField(te.Field, fmt.Sprintf("%s must be %s", te.Field, te.Type.String()))
	case errors.As(err, &se):
		return badField("", fmt.Sprintf("malformed JSON at byte %d", se.Offset))
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		f := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return badField(f, fmt.Sprintf("unknown field %q", f))
	default:
		return badField("", "malformed JSON: "+err.Error())
	}
}

func pageParams(c *fiber.Ctx) (page, size int, err error) {
	page, size = c.QueryInt("page", 1), c.QueryInt("page_size", 50)
	if page < 1 {
		return 0, 0, badField("page", "page must be 1 or more")
	}
	if size < 1 || size > 1000 {
		return 0, 0, badField("page_size", "page_size must be between 1 and 1000")
	}
	return page, size, nil
}
