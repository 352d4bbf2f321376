package api

import (
	"context"
	"net/http"
	"strconv"

	"github.com/rs/zerolog"

	"github.com/switchyard/switchyard/internal/carddata"
	"github.com/switchyard/switchyard/switch/admin"
	"github.com/switchyard/switchyard/switch/registry"
)

// MaskedHeader is the answer's header that says how many card numbers the server
// masked in the free text of the request (notes, reasons) before storing it. The
// libraries mask them too (for the console and other callers); the API masks first
// so that it can say so.
const MaskedHeader = "Card-Numbers-Masked"

// masked counts the card numbers masked in one request's free text.
type masked struct {
	n   int
	log zerolog.Logger
}

type maskedKey struct{}

// withMasked gives r a counter of masked card numbers, which logs through the API's
// logger.
func (a *api) withMasked(r *http.Request) (*http.Request, *masked) {
	m := &masked{log: a.o.Logger}
	return r.WithContext(context.WithValue(r.Context(), maskedKey{}, m)), m
}

// maskText masks the card numbers in *s, free text p typed into field of object
// (carddata.MaskText), counts them for the answer's MaskedHeader and logs at Info
// that it did, never the number. The text is kept, masked, not refused.
func maskText(r *http.Request, p admin.Principal, object, field string, s *string) {
	text, n := carddata.MaskText(*s)
	if n == 0 {
		return
	}
	*s = text
	if m, ok := r.Context().Value(maskedKey{}).(*masked); ok {
		m.n += n
		m.log.Info().Str("object", object).Str("field", field).Str("principal", p.Name).Int("card_numbers", n).
			Str("path", r.URL.Path).Msg("card number masked in free text")
	}
}

// noteError is the 400 of free text (field, such as "key K: reason") that
// registry.NoteProblem refuses, nil when it takes it: for the notes and reasons that
// go to stores without a check of their own (a key's status reason, a list entry's
// note).
func noteError(field, s string) error {
	if pr := registry.NoteProblem(s); pr != "" {
		return badRequest("%s: %s; free text takes any script, tabs and line breaks, not characters that reorder or hide text", field, pr)
	}
	return nil
}

// setHeader writes the MaskedHeader when something was masked.
func (m *masked) setHeader(w http.ResponseWriter) {
	if m.n > 0 {
		w.Header().Set(MaskedHeader, strconv.Itoa(m.n))
	}
}
