package audit

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/keybridge/sts/internal/store"
)

// A Journal takes the database write off the critical path of a request:
// the [Writer] appends each batch of records to a local append-only file
// with one write (and, with Sync, one fdatasync) and answers; a
// background loop applies the journal to the store in large batches, each
// in one transaction with a checkpoint that says how far the journal has
// been applied. At start, [OpenJournal] applies what a crash left behind,
// from the checkpoint on, so no record is lost or written twice.
//
// What survives: once a request is answered, its record is in the
// operating system's page cache (a process kill or crash loses nothing);
// with Sync it is on the disk too (a power loss loses nothing). Records
// reach the store within [DrainDelay] of their answer under normal
// operation; [Writer.Flush] waits for them.
//
// The journal is a directory of segment files named by a sequence number.
// Each record is framed as a 4-byte big-endian length, a 4-byte CRC-32C of
// the payload and the payload (the record's JSON). A torn last frame (a
// crash during a write) fails its length or checksum and ends the replay
// of its segment: it was never acknowledged.
type Journal struct {
	dir  string
	name string // of the checkpoint setting
	sync bool
	st   store.Audit
	cp   store.AuditCheckpointer

	mu  sync.Mutex // guards f, seg, off, buf
	f   *os.File
	seg uint64
	off int64
	buf []byte
}

// Journal tuning.
const (
	// SegmentSize is the size past which the journal starts a new
	// segment; applied segments are deleted.
	SegmentSize = 32 << 20
	// DrainDelay is how long the background loop gathers records before
	// applying them, unless DrainBatch records are waiting.
	DrainDelay = 100 * time.Millisecond
	// DrainBatch bounds the records applied in one transaction.
	DrainBatch = 4096
	// maxFrame bounds a frame's payload when replaying: a record is
	// bounded by Bound far below this.
	maxFrame = 1 << 20
)

// journalPos is a position in the journal: a segment and an offset in it.
type journalPos struct {
	seg uint64
	off int64
}

func (p journalPos) String() string { return fmt.Sprintf("%d:%d", p.seg, p.off) }

func parsePos(s string) (journalPos, error) {
	a, b, ok := strings.Cut(s, ":")
	seg, err1 := strconv.ParseUint(a, 10, 64)
	off, err2 := strconv.ParseInt(b, 10, 64)
	if !ok || err1 != nil || err2 != nil || off < 0 {
		return journalPos{}, fmt.Errorf("audit journal: bad checkpoint %q", s)
	}
	return journalPos{seg, off}, nil
}

func (p journalPos) before(q journalPos) bool {
	return p.seg < q.seg || (p.seg == q.seg && p.off < q.off)
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// segmentSize is SegmentSize, which tests lower.
var segmentSize int64 = SegmentSize

// OpenJournal opens (creating it if needed) the journal in dir over st,
// which must implement [store.AuditCheckpointer], and first applies to st
// every record the journal holds past st's checkpoint. With sync, each
// append is flushed to the disk before it is acknowledged.
func OpenJournal(ctx context.Context, dir string, st store.Audit, sync bool) (*Journal, error) {
	cp, ok := st.(store.AuditCheckpointer)
	if !ok {
		return nil, errors.New("audit journal: the store cannot record a checkpoint")
	}
	settings, ok := st.(store.Settings)
	if !ok {
		return nil, errors.New("audit journal: the store has no settings")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("audit journal: %w", err)
	}
	id, err := journalID(dir)
	if err != nil {
		return nil, err
	}
	j := &Journal{dir: dir, name: "audit.journal." + id, sync: sync, st: st, cp: cp}
	from := journalPos{}
	switch s, err := settings.GetSetting(ctx, j.name); {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		return nil, fmt.Errorf("audit journal: checkpoint: %w", err)
	default:
		if from, err = parsePos(s.Value); err != nil {
			return nil, err
		}
	}
	segs, err := j.segments()
	if err != nil {
		return nil, err
	}
	last := from.seg
	for _, seg := range segs {
		last = max(last, seg)
		if seg >= from.seg {
			start := int64(0)
			if seg == from.seg {
				start = from.off
			}
			if err := j.replay(ctx, seg, start); err != nil {
				return nil, err
			}
		}
		if err := os.Remove(j.path(seg)); err != nil {
			return nil, fmt.Errorf("audit journal: %w", err)
		}
	}
	j.seg = last + 1
	if err := j.openSegment(); err != nil {
		return nil, err
	}
	// The checkpoint now points at the fresh segment, so that an old
	// segment number is never read again.
	if err := cp.AppendAuditCheckpoint(ctx, nil, j.checkpoint(journalPos{j.seg, 0})); err != nil {
		j.f.Close()
		return nil, fmt.Errorf("audit journal: %w", err)
	}
	return j, nil
}

// journalID returns the journal's identity, created on first use: the
// name of its checkpoint, so that instances sharing a database keep
// separate ones.
func journalID(dir string) (string, error) {
	p := filepath.Join(dir, "id")
	b, err := os.ReadFile(p)
	if err == nil {
		return strings.TrimSpace(string(b)), nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("audit journal: %w", err)
	}
	var r [8]byte
	rand.Read(r[:])
	id := hex.EncodeToString(r[:])
	if err := os.WriteFile(p, []byte(id+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("audit journal: %w", err)
	}
	return id, nil
}

func (j *Journal) path(seg uint64) string {
	return filepath.Join(j.dir, fmt.Sprintf("%016d.log", seg))
}

// segments lists the journal's segment numbers in order.
func (j *Journal) segments() ([]uint64, error) {
	ents, err := os.ReadDir(j.dir)
	if err != nil {
		return nil, fmt.Errorf("audit journal: %w", err)
	}
	var out []uint64
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), ".log")
		if !ok {
			continue
		}
		if n, err := strconv.ParseUint(name, 10, 64); err == nil {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out, nil
}

// replay applies the records of segment seg from offset start.
func (j *Journal) replay(ctx context.Context, seg uint64, start int64) error {
	f, err := os.Open(j.path(seg))
	if err != nil {
		return fmt.Errorf("audit journal: %w", err)
	}
	defer f.Close()
	if _, err := f.Seek(start, io.SeekStart); err != nil {
		return fmt.Errorf("audit journal: %w", err)
	}
	r := bufio.NewReaderSize(f, 1<<16)
	pos := journalPos{seg, start}
	var recs []store.AuditRecord
	flush := func() error {
		if err := j.cp.AppendAuditCheckpoint(ctx, recs, j.checkpoint(pos)); err != nil {
			return fmt.Errorf("audit journal: replay: %w", err)
		}
		recs = recs[:0]
		return nil
	}
	var head [8]byte
	for {
		if _, err := io.ReadFull(r, head[:]); err != nil {
			break // the end, or a torn header
		}
		n := binary.BigEndian.Uint32(head[:4])
		if n > maxFrame {
			break
		}
		payload := make([]byte, n)
		if _, err := io.ReadFull(r, payload); err != nil {
			break
		}
		if crc32.Checksum(payload, castagnoli) != binary.BigEndian.Uint32(head[4:]) {
			break
		}
		var rec store.AuditRecord
		if err := json.Unmarshal(payload, &rec); err != nil {
			break
		}
		recs = append(recs, rec)
		pos.off += int64(8 + n)
		if len(recs) == DrainBatch {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	return flush()
}

func (j *Journal) checkpoint(p journalPos) *store.Setting {
	return &store.Setting{Name: j.name, Value: p.String(), UpdatedAt: time.Now()}
}

func (j *Journal) openSegment() error {
	f, err := os.OpenFile(j.path(j.seg), os.O_CREATE|os.O_WRONLY|os.O_APPEND|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("audit journal: %w", err)
	}
	j.f, j.off = f, 0
	return nil
}

// append writes recs as one write (then fdatasync with Sync) and returns
// the position after them.
func (j *Journal) append(recs []store.AuditRecord) (journalPos, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.off >= segmentSize {
		if err := j.f.Close(); err != nil {
			return journalPos{}, fmt.Errorf("audit journal: %w", err)
		}
		j.seg++
		if err := j.openSegment(); err != nil {
			return journalPos{}, err
		}
	}
	buf := j.buf[:0]
	for i := range recs {
		at := len(buf)
		buf = append(buf, 0, 0, 0, 0, 0, 0, 0, 0)
		b, err := json.Marshal(&recs[i])
		if err != nil {
			return journalPos{}, fmt.Errorf("audit journal: %w", err)
		}
		buf = append(buf, b...)
		binary.BigEndian.PutUint32(buf[at:], uint32(len(b)))
		binary.BigEndian.PutUint32(buf[at+4:], crc32.Checksum(b, castagnoli))
	}
	j.buf = buf
	if _, err := j.f.Write(buf); err != nil {
		// The segment may now end in a torn frame; later frames would
		// follow it unseen by a replay, so start a new segment.
		j.off = segmentSize
		return journalPos{}, fmt.Errorf("audit journal: %w", err)
	}
	if j.sync {
		if err := j.f.Sync(); err != nil {
			j.off = segmentSize
			return journalPos{}, fmt.Errorf("audit journal: %w", err)
		}
	}
	j.off += int64(len(buf))
	return journalPos{j.seg, j.off}, nil
}

// applied records that everything before p is in the store, and deletes
// the segments before p's.
func (j *Journal) applied(ctx context.Context, recs []store.AuditRecord, p journalPos) error {
	if err := j.cp.AppendAuditCheckpoint(ctx, recs, j.checkpoint(p)); err != nil {
		return err
	}
	segs, err := j.segments()
	if err != nil {
		return err
	}
	for _, s := range segs {
		if s < p.seg {
			os.Remove(j.path(s))
		}
	}
	return nil
}

// close closes the current segment; once everything is applied, it is
// deleted.
func (j *Journal) close(applied journalPos) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	err := j.f.Close()
	if !applied.before(journalPos{j.seg, j.off}) {
		os.Remove(j.path(j.seg))
	}
	return err
}
