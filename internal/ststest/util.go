package ststest

import (
	"crypto/rand"
	"encoding/hex"
	"sync/atomic"
	"time"
)

type atomicDuration struct{ v atomic.Int64 }

func (a *atomicDuration) Load() time.Duration { return time.Duration(a.v.Load()) }
func (a *atomicDuration) Add(d time.Duration) { a.v.Add(int64(d)) }

func randomID() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
