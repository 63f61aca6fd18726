package audit

// The audit trail is tamper-evident: every record a store appends carries
// the SHA-256 hash of its content and of the hash of the record before it
// in its chain, so that a record changed, deleted or inserted behind the
// server's back breaks the chain at that record, which [Verify] names.
//
// One chain per writer, not one global sequence: several instances share
// a PostgreSQL database, and a single chain would need one lock held by
// every audit transaction of every instance until it commits, serialising
// all of them. A chain per writer needs only its own head row, locked by
// the transaction that appends (FOR UPDATE; SQLite's write transactions
// are serial anyway), which no other instance touches. The store computes
// the sequence numbers and hashes inside that transaction, where the
// records' order is decided, and updates the head there too: so every
// writer is chained (the group-commit Writer, the journal's replay, the
// CLI, the portal), a failed transaction leaves no gap, two processes that
// happen to share a chain name serialise on it rather than fork it, and a
// deleted tail is seen against the head. The chain of a store is its host
// name (sqlstore.Store.AuditChainName).
//
// What the chain does not do: it is not a signature. Someone who can write
// the database and knows this encoding can rewrite a chain from the record
// they change to its head, or delete a whole chain with its head. Keep
// what `sts audit verify` prints (each chain's head) or the exported
// records somewhere the database's writers cannot reach, and compare.

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"

	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/internal/store/sqlcodec"
)

// ChainVersion is the version of the encoding [ChainHash] hashes. A
// change of encoding gets a new version, and new chains.
const ChainVersion = 1

// chainTag starts the input of every hash of version 1.
const chainTag = "keybridge-sts audit chain v1"

// ChainHash returns the hex SHA-256 hash of version 1 of record r (as
// stored: bounded, its time to the microsecond) following the record whose
// hash is prev ("" for the first record of a chain). The input is the tag
// "keybridge-sts audit chain v1", then each field as an 8-byte big-endian
// length and its bytes, integers as 8 big-endian bytes, in this order: prev,
// chain, seq, time (Unix µs, 0 for none), action, decision, client id,
// account id, subject, actor, the number of audience entries and each
// entry, jti, error, detail, request id, remote, count, trace id. The id
// the database assigns is not hashed.
func ChainHash(prev string, r *store.AuditRecord) string {
	b := make([]byte, 0, 1024)
	b = appendStr(b, chainTag)
	b = appendStr(b, prev)
	b = appendStr(b, r.Chain)
	b = appendInt(b, r.Seq)
	b = appendInt(b, sqlcodec.EncTime(r.Time))
	b = appendStr(b, r.Action)
	b = appendStr(b, r.Decision)
	b = appendStr(b, r.ClientID)
	b = appendStr(b, r.AccountID)
	b = appendStr(b, r.Subject)
	b = appendStr(b, r.Actor)
	b = appendInt(b, int64(len(r.Audience)))
	for _, a := range r.Audience {
		b = appendStr(b, a)
	}
	b = appendStr(b, r.JTI)
	b = appendStr(b, r.Error)
	b = appendStr(b, r.Detail)
	b = appendStr(b, r.RequestID)
	b = appendStr(b, r.Remote)
	b = appendInt(b, int64(r.Count))
	b = appendStr(b, r.TraceID)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func appendInt(b []byte, v int64) []byte { return binary.BigEndian.AppendUint64(b, uint64(v)) }

func appendStr(b []byte, s string) []byte { return append(appendInt(b, int64(len(s))), s...) }
