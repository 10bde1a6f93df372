package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"regexp"
	"strconv"
	"strings"

	"github.com/cn-relay-manager/cn-relay-manager/internal/batch/request"
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
	return checkControls(reflect.ValueOf(dst), "", false)
}

// checkControls refuses control characters in every string of a decoded request body
// with a 400 naming the field (items[3].models[1], window.x, ...). Struct fields tagged
// text:"free" are free text and may hold tabs and newlines.
func checkControls(v reflect.Value, path string, freeText bool) error {
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return nil
		}
		return checkControls(v.Elem(), path, freeText)
	case reflect.Struct:
		t := v.Type()
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if !f.IsExported() || name == "-" {
				continue
			}
			if name == "" {
				name = f.Name
			}
			if path != "" {
				name = path + "." + name
			}
			if err := checkControls(v.Field(i), name, f.Tag.Get("text") == "free"); err != nil {
				return err
			}
		}
	case reflect.Slice, reflect.Array:
		for i := 0; i < v.Len(); i++ {
			if err := checkControls(v.Index(i), fmt.Sprintf("%s[%d]", path, i), freeText); err != nil {
				return err
			}
		}
	case reflect.Map:
		iter := v.MapRange()
		for iter.Next() {
			k := fmt.Sprint(iter.Key().Interface())
			if r, bad := request.ControlChar(k, false); bad {
				return controlError(path, r)
			}
			if err := checkControls(iter.Value(), path+"."+k, freeText); err != nil {
				return err
			}
		}
	case reflect.String:
		if r, bad := request.ControlChar(v.String(), freeText); bad {
			return controlError(path, r)
		}
	}
	return nil
}

func controlError(field string, r rune) error {
	if field == "" {
		field = "body"
	}
	fe := request.ControlError(field, r)
	return badField(fe.Field, itemMessage(fe.Field, fe.Message))
}

var itemPath = regexp.MustCompile(`^items\[(\d+)\]`)

// itemMessage prefixes the message of a refused field inside items[i] with "item i+1: ":
// the field is a path into the request (0-based), the message counts items as the
// operator does.
func itemMessage(field, msg string) string {
	m := itemPath.FindStringSubmatch(field)
	if m == nil {
		return msg
	}
	i, err := strconv.Atoi(m[1])
	if err != nil {
		return msg
	}
	return fmt.Sprintf("item %d: %s", i+1, msg)
}

// rejectControlsInQuery answers 400 for a query parameter holding a control character
// (percent-encoded, e.g. ?host_id=%00): it names the parameter instead of letting the
// value reach the database.
func rejectControlsInQuery(c *fiber.Ctx) error {
	var bad error
	c.Context().QueryArgs().VisitAll(func(k, v []byte) {
		if bad != nil {
			return
		}
		if r, found := request.ControlChar(string(k), false); found {
			bad = controlError("query", r)
		} else if r, found := request.ControlChar(string(v), false); found {
			bad = controlError(string(k), r)
		}
	})
	if bad != nil {
		return bad
	}
	return c.Next()
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
