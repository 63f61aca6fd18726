// Package clientip decides which address a request came from. Behind a load
// balancer or reverse proxy every request arrives from the proxy, so the
// caller's address must be read from X-Forwarded-For or Forwarded (RFC
// 7239); but any caller can send those headers, so they are believed only
// from hops an operator declared trusted (--trusted-proxies). Every
// address-keyed limit and the audit's remote address use the result.
package clientip

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// Resolver finds a request's client address given the trusted proxies.
// The zero value trusts no proxy: the peer's address is the client's.
type Resolver struct {
	trusted []netip.Prefix
	// header is the one forwarding header the proxies write: HeaderXFF or
	// HeaderForwarded. Only that one is read: a proxy that appends to
	// X-Forwarded-For passes a caller's own Forwarded header through
	// untouched, so reading both would let any caller name its address.
	header string
}

// The forwarding headers a Resolver can read.
const (
	HeaderXFF       = "X-Forwarded-For"
	HeaderForwarded = "Forwarded" // RFC 7239
)

// Parse reads a comma- or space-separated list of CIDR prefixes or single
// addresses ("10.0.0.0/8, 192.0.2.7, ::1"); the proxies write
// X-Forwarded-For (see WithHeader).
func Parse(list string) (*Resolver, error) {
	r := &Resolver{header: HeaderXFF}
	for _, f := range strings.FieldsFunc(list, func(c rune) bool { return c == ',' || c == ' ' }) {
		if strings.Contains(f, "/") {
			p, err := netip.ParsePrefix(f)
			if err != nil {
				return nil, fmt.Errorf("trusted-proxies: %q is not a CIDR prefix or address", f)
			}
			r.trusted = append(r.trusted, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(f)
		if err != nil {
			return nil, fmt.Errorf("trusted-proxies: %q is not a CIDR prefix or address", f)
		}
		a = a.Unmap()
		r.trusted = append(r.trusted, netip.PrefixFrom(a, a.BitLen()))
	}
	return r, nil
}

// WithHeader makes r read name (HeaderXFF or HeaderForwarded, in any
// case) as the header its proxies write, and no other.
func (r *Resolver) WithHeader(name string) (*Resolver, error) {
	switch {
	case strings.EqualFold(name, HeaderXFF):
		r.header = HeaderXFF
	case strings.EqualFold(name, HeaderForwarded):
		r.header = HeaderForwarded
	default:
		return nil, fmt.Errorf("forwarded-header: %q is not %s or %s", name, HeaderXFF, HeaderForwarded)
	}
	return r, nil
}

// Trusted reports whether a is one of the trusted proxies.
func (r *Resolver) Trusted(a netip.Addr) bool {
	if r == nil {
		return false
	}
	a = a.Unmap()
	for _, p := range r.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Addr returns the client address of req: the peer's address, unless the
// peer is a trusted proxy, in which case the forwarding headers are walked
// from the nearest hop back while each hop is trusted; the first untrusted
// hop is the client. A header that cannot be parsed is not believed past
// that point. It returns the zero Addr only when RemoteAddr is no address.
func (r *Resolver) Addr(req *http.Request) netip.Addr {
	peer := parseHost(req.RemoteAddr)
	if !peer.IsValid() || !r.Trusted(peer) {
		return peer
	}
	hops := forwarded(req.Header, r.header)
	client := peer
	for i := len(hops) - 1; i >= 0; i-- {
		a := parseHost(hops[i])
		if !a.IsValid() {
			break
		}
		client = a
		if !r.Trusted(a) {
			break
		}
	}
	return client
}

// Middleware replaces the RemoteAddr of each request by its client
// address (with port 0 when it came through a proxy), so that everything
// downstream, limits and audit alike, sees the caller rather than the
// proxy.
func (r *Resolver) Middleware(next http.Handler) http.Handler {
	if r == nil || len(r.trusted) == 0 {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		peer := parseHost(req.RemoteAddr)
		if a := r.Addr(req); a.IsValid() && a != peer {
			req = req.Clone(req.Context())
			req.RemoteAddr = netip.AddrPortFrom(a, 0).String()
		}
		next.ServeHTTP(w, req)
	})
}

// Key is the key under which address-keyed limits count a remote address
// (host:port or host): the IPv4 address, or the /64 prefix of an IPv6
// address, since one host commonly holds a whole /64.
func Key(remote string) string {
	a := parseHost(remote)
	if !a.IsValid() {
		return remote
	}
	if a.Is4() {
		return a.String()
	}
	p, _ := a.Prefix(64)
	return p.String()
}

// parseHost reads an address from "host:port", "[v6]:port", "[v6]" or
// "host", without a zone; invalid input gives the zero Addr.
func parseHost(s string) netip.Addr {
	s = strings.TrimSpace(s)
	if host, _, err := net.SplitHostPort(s); err == nil {
		s = host
	}
	s = strings.TrimSuffix(strings.TrimPrefix(s, "["), "]")
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Addr{}
	}
	return a.Unmap()
}

// forwarded lists the client addresses the forwarding header names, the
// farthest first: the for= parameters of Forwarded (RFC 7239 §5.2), or the
// entries of X-Forwarded-For. Several header lines are read in order, as
// one list.
func forwarded(h http.Header, header string) []string {
	var out []string
	if header == HeaderForwarded {
		for _, line := range h.Values(HeaderForwarded) {
			for _, elem := range strings.Split(line, ",") {
				for _, pair := range strings.Split(elem, ";") {
					k, v, ok := strings.Cut(strings.TrimSpace(pair), "=")
					if ok && strings.EqualFold(k, "for") {
						out = append(out, strings.Trim(v, `"`))
					}
				}
			}
		}
		return out
	}
	for _, line := range h.Values(HeaderXFF) {
		for _, a := range strings.Split(line, ",") {
			out = append(out, strings.TrimSpace(a))
		}
	}
	return out
}
