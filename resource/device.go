package resource

import (
	"context"
	"errors"
	"net/http"

	"github.com/keybridge/sts/oauth"
)

// Device is the radio device a device token names (Key Bridge STS issue
// 14): a CBRS device (CBSD) that obtained the token with its certificate,
// or a domain proxy that obtained it for the device.
type Device struct {
	// Subject is the token's sub: "cbsd:" + FCC ID + ":" + serial
	// number, each percent-escaped ("%", ":" and "/").
	Subject string `json:"sub"`
	// FCCID and Serial identify a CBSD, as its certificate (or its
	// domain proxy's delegation) says; empty for a device of a generic
	// X.509 profile.
	FCCID  string `json:"fcc_id,omitempty"`
	Serial string `json:"serial,omitempty"`
	// Role is the certificate's role ("cbsd", or "device" for a generic
	// X.509 profile); Profile the STS's device trust profile.
	Role    string `json:"role"`
	Profile string `json:"profile"`
	// Proxy is the domain proxy (act.sub) that obtained the token for
	// the device; "" when the device presented its own certificate.
	Proxy string `json:"proxy,omitempty"`
	// Thumbprint is the x5t#S256 of the certificate the token is bound
	// to: the device's, or its domain proxy's (the presenter).
	Thumbprint string `json:"x5t#S256"`
}

// ErrNotDevice: the token is valid but is not a device token bound to a
// certificate.
var ErrNotDevice = errors.New("resource: not a certificate-bound device token")

// DeviceOf returns the device a verified token names. It is
// ErrNotDevice when the token has no device claim, or is not bound to a
// certificate: then whoever holds it could present it.
func DeviceOf(c *Claims) (*Device, error) {
	if c == nil || c.Confirmation.X5tS256 == "" {
		return nil, ErrNotDevice
	}
	var w struct {
		Device *struct {
			FCCID   string `json:"fcc_id"`
			Serial  string `json:"serial"`
			Role    string `json:"role"`
			Profile string `json:"profile"`
			Subject string `json:"subject"`
		} `json:"device"`
	}
	if err := c.Decode(&w); err != nil || w.Device == nil || w.Device.Subject != c.Subject {
		return nil, ErrNotDevice
	}
	// A CBSD is its FCC ID and serial number, and its sub says so: a
	// device claim naming one while the sub names another party is not
	// a device token (a SAS identifies a CBSD by FCC ID and serial).
	if (w.Device.FCCID != "" || w.Device.Serial != "" || w.Device.Role == "cbsd") &&
		c.Subject != cbsdSubject(w.Device.FCCID, w.Device.Serial) {
		return nil, ErrNotDevice
	}
	d := &Device{
		Subject: c.Subject, FCCID: w.Device.FCCID, Serial: w.Device.Serial,
		Role: w.Device.Role, Profile: w.Device.Profile, Thumbprint: c.Confirmation.X5tS256,
	}
	if c.Act != nil {
		d.Proxy = c.Act.Subject
	}
	return d, nil
}

// VerifyDevice is [Verifier.VerifyRequest] for device tokens: the
// request's token must be valid, bound to the certificate of the
// request's TLS connection (or the one a trusted proxy forwards), and
// name a device.
func (v *Verifier) VerifyDevice(r *http.Request) (*Claims, *Device, error) {
	c, err := v.VerifyRequest(r)
	if err != nil {
		return nil, nil, err
	}
	d, err := DeviceOf(c)
	if err != nil {
		return nil, nil, err
	}
	return c, d, nil
}

type deviceKey struct{}

// DeviceFromContext returns the device that [Verifier.DeviceMiddleware]
// verified for the request whose context is ctx.
func DeviceFromContext(ctx context.Context) (*Device, bool) {
	d, ok := ctx.Value(deviceKey{}).(*Device)
	return d, ok
}

// DeviceMiddleware is [Verifier.Middleware] accepting only device tokens
// bound to the presenting certificate: any other valid token is refused
// with 401 and error="invalid_token". next finds the device with
// [DeviceFromContext] (and the claims with [ClaimsFromContext]).
func (v *Verifier) DeviceMiddleware(next http.Handler, requiredScopes ...string) http.Handler {
	return v.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, _ := ClaimsFromContext(r.Context())
		d, err := DeviceOf(c)
		if err != nil {
			v.log.Debug("token refused", "err", err)
			v.challenge(w, http.StatusUnauthorized, oauth.ErrInvalidToken, "not a certificate-bound device token", nil)
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), deviceKey{}, d)))
	}), requiredScopes...)
}

// cbsdSubject is the sub of a CBSD's token, as the STS writes it
// (devicecert.CBSDSubject): "cbsd:" + FCC ID + ":" + serial, each with
// "%", ":", "/" and any byte not printable ASCII percent-encoded.
func cbsdSubject(fccID, serial string) string {
	if fccID == "" || serial == "" {
		return ""
	}
	return "cbsd:" + escapeID(fccID) + ":" + escapeID(serial)
}

func escapeID(s string) string {
	const hexDigits = "0123456789ABCDEF"
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c > ' ' && c < 0x7f && c != '%' && c != ':' && c != '/' {
			b = append(b, c)
			continue
		}
		b = append(b, '%', hexDigits[c>>4], hexDigits[c&15])
	}
	return string(b)
}
