package api

import (
	"net/http"

	"github.com/go-chi/chi/v5"
)

// Routes returns the router, for tools and tests that walk the routes
// (chi.Walk) to check every route is covered.
func (s *Server) Routes() chi.Routes { return s.router }

// allowed lists the methods path has a route for: the Allow header of a 405
// (RFC 9110 §15.5.6).
func (s *Server) allowed(path string) []string {
	var out []string
	for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
		if s.router.Match(chi.NewRouteContext(), m, path) {
			out = append(out, m)
		}
	}
	return out
}
