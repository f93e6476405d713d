package api

import (
	"log/slog"
	"net/http"
	"sort"
	"strings"

	"github.com/go-chi/chi/v5"
)

// RoutedServerForTest returns a server with every route mounted, /v1
// included, but no store or authenticator: enough for requests that are
// answered before either is used (missing credentials, public routes).
func RoutedServerForTest() http.Handler {
	s := NewServer(Deps{Log: slog.New(slog.DiscardHandler)})
	s.routes()
	return s
}

// RoutesForTest lists every route the router has, as "METHOD /pattern".
func RoutesForTest() []string {
	s := NewServer(Deps{Log: slog.New(slog.DiscardHandler)})
	s.routes()
	var out []string
	_ = chi.Walk(s.router, func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		out = append(out, method+" "+strings.TrimSuffix(route, "/*"))
		return nil
	})
	sort.Strings(out)
	return out
}

// ProblemSlugsForTest lists the slug of every problem type.
func ProblemSlugsForTest() []string {
	var out []string
	for _, pt := range problemTypes {
		out = append(out, pt.Slug)
	}
	sort.Strings(out)
	return out
}
