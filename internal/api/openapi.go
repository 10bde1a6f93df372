package api

import (
	_ "embed"

	"github.com/gofiber/fiber/v2"
)

// OpenAPIPath is where the OpenAPI 3 document of this API is served (bearer token needed).
const OpenAPIPath = "/api/openapi.json"

// OpenAPIDocument is the OpenAPI 3.0 description of every route Mount registers.
//
//go:embed openapi.json
var OpenAPIDocument []byte

func (s *Server) openAPI(c *fiber.Ctx) error {
	c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSONCharsetUTF8)
	return c.Send(OpenAPIDocument)
}
