package api

import (
	"bytes"
	_ "embed"
	"net/http"
)

// openAPIDocument is the OpenAPI 3.1 description of the API: a static,
// reviewed file. api/spectest validates every response the integration
// tests see against it, so it cannot drift from the handlers unnoticed.
//
//go:embed openapi/v1.json
var openAPIDocument []byte

// OpenAPIDocument returns a copy of the OpenAPI 3.1 document served at
// /openapi/v1.json.
func OpenAPIDocument() []byte { return bytes.Clone(openAPIDocument) }

// serveOpenAPI: GET /openapi/v1.json.
func serveOpenAPI(w http.ResponseWriter, _ *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "public, max-age=300")
	h.Set("Access-Control-Allow-Origin", "*") // so tools on other origins can load it
	_, _ = w.Write(openAPIDocument)
}
