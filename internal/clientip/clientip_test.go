package clientip

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestAddr(t *testing.T) {
	r, err := Parse("10.0.0.0/8, 192.0.2.7 2001:db8:1::/48")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, remote string
		header       http.Header
		want         string
	}{
		{"direct", "198.51.100.1:4711", nil, "198.51.100.1"},
		{"untrusted peer's header is ignored", "198.51.100.1:4711", http.Header{"X-Forwarded-For": {"203.0.113.9"}}, "198.51.100.1"},
		{"trusted proxy", "10.1.2.3:80", http.Header{"X-Forwarded-For": {"203.0.113.9"}}, "203.0.113.9"},
		{"spoofed first entry", "10.1.2.3:80", http.Header{"X-Forwarded-For": {"1.1.1.1, 203.0.113.9"}}, "203.0.113.9"},
		{"two trusted hops", "10.1.2.3:80", http.Header{"X-Forwarded-For": {"203.0.113.9, 192.0.2.7"}}, "203.0.113.9"},
		{"several header lines", "10.1.2.3:80", http.Header{"X-Forwarded-For": {"1.1.1.1", "203.0.113.9, 10.9.9.9"}}, "203.0.113.9"},
		{"garbage stops the walk", "10.1.2.3:80", http.Header{"X-Forwarded-For": {"203.0.113.9, nonsense"}}, "10.1.2.3"},
		{"trusted proxy without header", "10.1.2.3:80", nil, "10.1.2.3"},
		// The proxy appends to X-Forwarded-For and passes the caller's
		// own Forwarded header through: that header is not believed.
		{"caller's Forwarded ignored", "192.0.2.7:80", http.Header{"Forwarded": {`for=198.51.100.20`}, "X-Forwarded-For": {"203.0.113.9"}}, "203.0.113.9"},
		{"caller's Forwarded alone ignored", "192.0.2.7:80", http.Header{"Forwarded": {`for=198.51.100.20`}}, "192.0.2.7"},
		{"trusted v6 prefix", "[2001:db8:1::5]:443", http.Header{"X-Forwarded-For": {"203.0.113.9"}}, "203.0.113.9"},
		{"mapped v4", "[::ffff:10.1.2.3]:80", http.Header{"X-Forwarded-For": {"203.0.113.9"}}, "203.0.113.9"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req := httptest.NewRequest("GET", "/", nil)
			req.RemoteAddr = c.remote
			if c.header != nil {
				req.Header = c.header
			}
			if got := r.Addr(req).String(); got != c.want {
				t.Errorf("Addr = %s, want %s", got, c.want)
			}
		})
	}
}

// TestForwardedHeader: with --forwarded-header Forwarded, only Forwarded
// (RFC 7239) is read, and a caller's X-Forwarded-For is ignored.
func TestForwardedHeader(t *testing.T) {
	r, err := Parse("192.0.2.7")
	if err == nil {
		r, err = r.WithHeader("forwarded")
	}
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		header http.Header
		want   string
	}{
		{http.Header{"Forwarded": {`for=198.51.100.20;proto=https, for="[2001:db8::1]:443"`}, "X-Forwarded-For": {"1.1.1.1"}}, "2001:db8::1"},
		{http.Header{"Forwarded": {`for=198.51.100.20`}}, "198.51.100.20"},
		{http.Header{"Forwarded": {`for=_hidden`}}, "192.0.2.7"},
		{http.Header{"X-Forwarded-For": {"1.1.1.1"}}, "192.0.2.7"},
	} {
		req := httptest.NewRequest("GET", "/", nil)
		req.RemoteAddr, req.Header = "192.0.2.7:80", tc.header
		if got := r.Addr(req).String(); got != tc.want {
			t.Errorf("%v: Addr = %s, want %s", tc.header, got, tc.want)
		}
	}
	if _, err := r.WithHeader("X-Real-IP"); err == nil {
		t.Error("WithHeader accepted an unknown header")
	}
}

func TestNoTrustedProxies(t *testing.T) {
	var r *Resolver
	req := httptest.NewRequest("GET", "/", nil)
	req.RemoteAddr = "10.1.2.3:80"
	req.Header.Set("X-Forwarded-For", "203.0.113.9")
	if got := r.Addr(req).String(); got != "10.1.2.3" {
		t.Errorf("nil resolver: Addr = %s", got)
	}
	zero, _ := Parse("")
	if got := zero.Addr(req).String(); got != "10.1.2.3" {
		t.Errorf("empty resolver: Addr = %s", got)
	}
}

func TestParseErrors(t *testing.T) {
	for _, s := range []string{"10.0.0.0/33", "example.com", "10.0.0.1/x"} {
		if _, err := Parse(s); err == nil {
			t.Errorf("Parse(%q) succeeded", s)
		}
	}
}

func TestMiddleware(t *testing.T) {
	r, _ := Parse("127.0.0.0/8")
	var seen string
	h := r.Middleware(http.HandlerFunc(func(_ http.ResponseWriter, req *http.Request) { seen = req.RemoteAddr }))
	req := httptest.NewRequest("GET", "/", nil)
	req.RemoteAddr = "127.0.0.1:5000"
	req.Header.Set("X-Forwarded-For", "2001:db8::7")
	h.ServeHTTP(httptest.NewRecorder(), req)
	if seen != "[2001:db8::7]:0" {
		t.Errorf("RemoteAddr downstream = %q", seen)
	}
	req.Header.Del("X-Forwarded-For")
	h.ServeHTTP(httptest.NewRecorder(), req)
	if seen != "127.0.0.1:5000" {
		t.Errorf("RemoteAddr without header = %q", seen)
	}
}

func TestKey(t *testing.T) {
	for in, want := range map[string]string{
		"198.51.100.1:4711":           "198.51.100.1",
		"[2001:db8:1:2:3:4:5:6]:443":  "2001:db8:1:2::/64",
		"[2001:db8:1:2:ffff:4:5:6]:0": "2001:db8:1:2::/64",
		"[::ffff:198.51.100.1]:1":     "198.51.100.1",
		"2001:db8:1:2::9":             "2001:db8:1:2::/64",
		"not an address":              "not an address",
	} {
		if got := Key(in); got != want {
			t.Errorf("Key(%q) = %q, want %q", in, got, want)
		}
	}
}
