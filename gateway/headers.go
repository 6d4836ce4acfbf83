package gateway

import (
	"io"
	"net/http"
	"strings"
)

// Headers the gateway sets on the request to the upstream.
const (
	HeaderPool    = "X-Switchback-Pool"
	HeaderFlags   = "X-Switchback-Flags"
	HeaderVersion = "X-Switchback-Version"
)

// headerPrefix matches every header the gateway owns, so a client cannot
// smuggle a pool or flag decision to the upstream.
const headerPrefix = "x-switchback-"

// StripClientHeaders removes any client-supplied X-Switchback-* header,
// whatever its case and however many copies, including spellings with '_'
// for '-' (some upstream servers treat the two alike), and drops those names
// from Connection, where they would make the proxy strip the gateway's own
// headers as hop-by-hop. It allocates only when there is something to remove.
func StripClientHeaders(h http.Header) {
	for k := range h {
		if ownHeader(k) {
			delete(h, k)
		}
	}
	conn := h["Connection"]
	for i, v := range conn {
		if !containsOwn(v) {
			continue
		}
		var kept []string
		for tok := range strings.SplitSeq(v, ",") {
			if t := strings.TrimSpace(tok); t != "" && !ownHeader(t) {
				kept = append(kept, t)
			}
		}
		conn[i] = strings.Join(kept, ", ")
	}
}

func ownHeader(k string) bool {
	if len(k) < len(headerPrefix) {
		return false
	}
	for i := 0; i < len(headerPrefix); i++ {
		c := k[i] | 0x20 // ASCII lower case; maps '_' (0x5f) to 0x7f
		want := headerPrefix[i]
		if c != want && !(want == '-' && k[i] == '_') {
			return false
		}
	}
	return true
}

func containsOwn(v string) bool {
	for tok := range strings.SplitSeq(v, ",") {
		if ownHeader(strings.TrimSpace(tok)) {
			return true
		}
	}
	return false
}

// SetUpstreamHeaders writes the decision onto the outgoing request headers.
// The caller has stripped client copies first. The values are precomputed
// strings, but they get one fresh backing array per request (its only
// allocation) rather than slices shared across requests: reverse_proxy
// hands the original request to its handle_response routes, where
// request_header's replace edits values in place, and a shared slice would
// carry that edit into every other request.
func (s *Snapshot) SetUpstreamHeaders(h http.Header, d Decision) {
	vals := [3]string{s.pools[d.Pool].Name, s.version, ""}
	buf := vals[:] // escapes: one 48-byte allocation
	h[HeaderPool] = buf[0:1:1]
	h[HeaderVersion] = buf[1:2:2]
	if d.Flags != 0 {
		buf[2] = s.FlagsHeader(d.Flags)
		h[HeaderFlags] = buf[2:3:3]
	}
}

// StripClientTrailers does for trailers, which arrive after the body, what
// StripClientHeaders does for headers: a client must not be able to send
// X-Switchback-* to the upstream as a trailer either. Trailers come only
// with a body of unknown length (chunked, or HTTP/2 without a length), and
// net/http fills them in when the body is read to its end, declared or not;
// so such a body is wrapped to strip them at EOF, before the proxy copies
// them. Other requests cost nothing.
func StripClientTrailers(r *http.Request) {
	StripClientHeaders(r.Trailer) // declared names
	if r.Body == nil || r.Body == http.NoBody || r.ContentLength >= 0 {
		return
	}
	r.Body = &trailerStripper{ReadCloser: r.Body, req: r}
}

type trailerStripper struct {
	io.ReadCloser
	req *http.Request
}

func (t *trailerStripper) Read(p []byte) (int, error) {
	n, err := t.ReadCloser.Read(p)
	if err == io.EOF {
		StripClientHeaders(t.req.Trailer)
	}
	return n, err
}
