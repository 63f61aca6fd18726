package federation

import "time"

// KeyStatus is what the Fetcher holds of one issuer's keys, for the
// portal's dashboard. The Fetcher keeps no history: neither when the keys
// were fetched nor the error of a fetch that failed without good keys to
// fall back on (that error goes to the log and to the refused request).
type KeyStatus struct {
	// Cached: a key set is held (Keys keys from Source, a JWKS URI or
	// KeySourceStatic).
	Cached bool
	Keys   int
	Source string
	// Expires is when the key set is due to be fetched again (zero for a
	// static set).
	Expires time.Time
	// Stale: the last refresh failed and the last good keys are served
	// (for at most KeepStale past Expires).
	Stale bool
	// Fetching: a fetch is in flight.
	Fetching bool
}

// KeyStatus reports what is held of the keys of the issuer (its
// TrustedIssuer.Issuer) at now.
func (f *Fetcher) KeyStatus(issuer string) KeyStatus {
	now := f.o.Now()
	f.mu.Lock()
	defer f.mu.Unlock()
	st := f.issuers[issuer]
	if st == nil {
		return KeyStatus{}
	}
	ks := KeyStatus{Fetching: st.keysCall != nil}
	if k := st.keys; k != nil {
		ks.Cached, ks.Keys, ks.Source, ks.Expires = true, len(k.keys), k.source, k.expires
		ks.Stale = k.source != KeySourceStatic && !now.Before(k.expires) && now.Before(st.keysRetry)
	}
	return ks
}
