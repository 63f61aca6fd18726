package bench

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// ceilingPayload is an access token's claims, of the size the server signs.
const ceilingPayload = `{"iss":"http://127.0.0.1:8080","sub":"alice","aud":"https://backend.example.com/api","exp":1900000000,"iat":1800000000,"jti":"abcdefghijklmnopqrstuv","scope":"api"}`

// Ceiling measures the ES256 crypto ceiling of a token exchange on this
// machine: how many times per second all GOMAXPROCS cores can parse and
// verify an ES256 JWT and sign a new one through go-jose, the library and
// operations every exchange performs. It is the same work as
// BenchmarkES256SignVerify in internal/server and the shared
// exchange-vs-ceiling script, so that an exchange rate divided by it says
// how much of the CPU goes to anything other than the two signatures.
//
// It runs for d (a few seconds give a stable figure) and returns
// operations per second; it returns ctx's error if ctx ends first.
func Ceiling(ctx context.Context, d time.Duration) (float64, error) {
	if d <= 0 {
		return 0, fmt.Errorf("bench: ceiling duration %v is not positive", d)
	}
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return 0, err
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: k}, nil)
	if err != nil {
		return 0, err
	}
	obj, err := signer.Sign([]byte(ceilingPayload))
	if err != nil {
		return 0, err
	}
	tok, err := obj.CompactSerialize()
	if err != nil {
		return 0, err
	}
	algs := []jose.SignatureAlgorithm{jose.ES256}
	run, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var (
		ops      atomic.Int64
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
	)
	fail := func(err error) {
		errOnce.Do(func() { firstErr = err })
		cancel()
	}
	start := time.Now()
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var n int64
			// The context is polled between operations: one operation
			// takes tens of microseconds, so the overshoot is negligible.
			for run.Err() == nil {
				o, err := jose.ParseSignedCompact(tok, algs)
				if err != nil {
					fail(err)
					break
				}
				if _, err := o.Verify(&k.PublicKey); err != nil {
					fail(err)
					break
				}
				if _, err := signer.Sign([]byte(ceilingPayload)); err != nil {
					fail(err)
					break
				}
				n++
			}
			ops.Add(n)
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	switch {
	case firstErr != nil:
		return 0, fmt.Errorf("bench: ceiling: %w", firstErr)
	case ctx.Err() != nil:
		return 0, ctx.Err()
	case ops.Load() == 0:
		return 0, fmt.Errorf("bench: ceiling: no operation completed in %v", d)
	}
	return float64(ops.Load()) / elapsed.Seconds(), nil
}
