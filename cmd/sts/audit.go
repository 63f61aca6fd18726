package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/keybridge/sts/internal/audit"
	"github.com/keybridge/sts/internal/portal"
	"github.com/keybridge/sts/internal/setup"
	"github.com/keybridge/sts/internal/store"
	"github.com/spf13/cobra"
)

func newAudit() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Verify, list and export the audit trail",
		Long: `The audit trail records every decision of the server. Its records are
hash-chained, a chain per writing host: ` + "`sts audit verify`" + ` walks every chain and
names the first record changed, deleted or inserted behind the server's
back. ` + "`sts audit list`" + ` shows records as the portal does; ` + "`sts audit export`" + `
streams them for a SIEM, as JSON lines or CSV.`,
	}
	cmd.AddCommand(newAuditVerify(), newAuditList(), newAuditExport())
	return cmd
}

// auditFilterFlags are the filters of list and export, as the portal's.
type auditFilterFlags struct {
	client, account, action, since, until string
}

func (f *auditFilterFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.client, "client", "", "only the records of this client id")
	cmd.Flags().StringVar(&f.account, "account", "", "only the records of this account id")
	cmd.Flags().StringVar(&f.action, "action", "", `only this action, or the actions under it ("client" matches "client.create")`)
	cmd.Flags().StringVar(&f.since, "since", "", "only records at or after this time (UTC): YYYY-MM-DD, YYYY-MM-DD HH:MM[:SS], RFC 3339, or a time ago (90m, 24h, 7d)")
	cmd.Flags().StringVar(&f.until, "until", "", "only records before the end of this period (UTC): 2026-01-31 includes that day; or before a time ago (1h)")
}

// filter returns the store's filter: since inclusive, until including the
// period it names, as on the portal's audit page.
func (f *auditFilterFlags) filter(now time.Time) (store.AuditFilter, error) {
	af := store.AuditFilter{ClientID: f.client, AccountID: f.account, Action: f.action}
	var err error
	if f.since != "" {
		if af.Since, _, err = auditTime(f.since, now); err != nil {
			return af, fmt.Errorf("--since: %w", err)
		}
	}
	if f.until != "" {
		if _, af.Until, err = auditTime(f.until, now); err != nil {
			return af, fmt.Errorf("--until: %w", err)
		}
	}
	if !af.Since.IsZero() && !af.Until.IsZero() && !af.Since.Before(af.Until) {
		return af, errors.New("--until is before --since: nothing can match")
	}
	return af, nil
}

// auditTime reads a --since or --until value: a time as the portal's audit
// filters take it (the instant and the end of the period it names), or a
// time ago, as a Go duration or whole days ("90m", "24h", "7d"), which
// names the instant now minus it.
func auditTime(s string, now time.Time) (start, end time.Time, err error) {
	v := strings.TrimSpace(s)
	d, derr := time.ParseDuration(v)
	if days, ok := strings.CutSuffix(v, "d"); ok && derr != nil {
		if n, nerr := strconv.Atoi(days); nerr == nil && n <= 100000 {
			d, derr = time.Duration(n)*24*time.Hour, nil
		}
	}
	if derr == nil {
		if d <= 0 {
			return start, end, fmt.Errorf("%q: a time ago must be positive", s)
		}
		t := now.Add(-d)
		return t, t, nil
	}
	start, end, err = portal.ParseAuditTime(s)
	if err != nil {
		err = fmt.Errorf("%w; or a time ago such as 90m, 24h or 7d", err)
	}
	return start, end, err
}

// auditView is the JSON form of a record (list, export), in the order of
// the CSV columns.
type auditView struct {
	ID        int64    `json:"id"`
	Time      string   `json:"time"`
	Action    string   `json:"action"`
	Decision  string   `json:"decision"`
	ClientID  string   `json:"client_id"`
	AccountID string   `json:"account_id"`
	Subject   string   `json:"subject"`
	Actor     string   `json:"actor"`
	Audience  []string `json:"audience"`
	JTI       string   `json:"jti"`
	Error     string   `json:"error"`
	Detail    string   `json:"detail"`
	RequestID string   `json:"request_id"`
	Remote    string   `json:"remote"`
	TraceID   string   `json:"trace_id"`
	Count     int      `json:"count"`
	Chain     string   `json:"chain"`
	Seq       int64    `json:"seq"`
	Hash      string   `json:"hash"`
}

// csvHeader names the CSV columns, auditView's JSON names.
var csvHeader = []string{"id", "time", "action", "decision", "client_id", "account_id", "subject", "actor",
	"audience", "jti", "error", "detail", "request_id", "remote", "trace_id", "count", "chain", "seq", "hash"}

func viewAudit(r *store.AuditRecord) auditView {
	aud := r.Audience
	if aud == nil {
		aud = []string{}
	}
	return auditView{
		ID: r.ID, Time: r.Time.UTC().Format(time.RFC3339Nano), Action: r.Action, Decision: r.Decision,
		ClientID: r.ClientID, AccountID: r.AccountID, Subject: r.Subject, Actor: r.Actor, Audience: aud,
		JTI: r.JTI, Error: r.Error, Detail: r.Detail, RequestID: r.RequestID, Remote: r.Remote,
		TraceID: r.TraceID, Count: max(r.Count, 1), Chain: r.Chain, Seq: r.Seq, Hash: r.Hash,
	}
}

// csvRow is v in csvHeader's order; the audience is its JSON array.
func (v *auditView) csvRow() []string {
	aud, _ := json.Marshal(v.Audience)
	return []string{strconv.FormatInt(v.ID, 10), v.Time, v.Action, v.Decision, v.ClientID, v.AccountID,
		v.Subject, v.Actor, string(aud), v.JTI, v.Error, v.Detail, v.RequestID, v.Remote, v.TraceID,
		strconv.Itoa(v.Count), v.Chain, strconv.FormatInt(v.Seq, 10), v.Hash}
}

// writeCSVRow writes one RFC 4180 record: fields separated by commas, a
// field quoted when it holds a comma, a quote, CR or LF or starts with a
// space (a quote doubled inside), CRLF at the end. Unlike encoding/csv
// with UseCRLF, it keeps every byte of a field, a lone CR included.
func writeCSVRow(w *bufio.Writer, fields []string) error {
	for i, f := range fields {
		if i > 0 {
			w.WriteByte(',')
		}
		if f == "" || !(strings.ContainsAny(f, ",\"\r\n") || f[0] == ' ' || f[0] == '\t') {
			w.WriteString(f)
			continue
		}
		w.WriteByte('"')
		w.WriteString(strings.ReplaceAll(f, `"`, `""`))
		w.WriteByte('"')
	}
	_, err := w.WriteString("\r\n")
	return err
}

// termSafe shows s on a terminal as it is, but for what a caller could use
// to move the cursor or forge lines (control characters, escapes), which
// are written as Go escapes.
func termSafe(s string) string {
	ok := true
	for _, r := range s {
		if !unicode.IsPrint(r) || r == '\\' {
			ok = false
			break
		}
	}
	if ok {
		return s
	}
	q := strconv.QuoteToGraphic(s)
	return q[1 : len(q)-1]
}

func newAuditList() *cobra.Command {
	var (
		out   output
		f     auditFilterFlags
		limit int
	)
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List audit records, newest first, as the portal's audit page does",
		Example: `  sts audit list --client c-1 --since 2026-12-01
  sts audit list --action token --limit 20 -o json`,
		RunE: withData(&out, func(cmd *cobra.Command, args []string, env *setup.Env, asJSON bool) error {
			af, err := f.filter(time.Now())
			if err != nil {
				return err
			}
			if limit < 1 || limit > 10000 {
				return fmt.Errorf("--limit must be between 1 and 10000 (use `sts audit export` for more), not %d", limit)
			}
			af.Limit = limit
			recs, err := env.Store.ListAudit(cmd.Context(), af)
			if err != nil {
				return err
			}
			return writeList(cmd.OutOrStdout(), asJSON, recs, func(r store.AuditRecord) auditView { return viewAudit(&r) },
				"No audit records match.",
				[]string{"ID", "TIME", "ACTION", "DECISION", "CLIENT", "SUBJECT", "ERROR", "COUNT", "DETAIL"},
				func(v auditView) []string {
					return []string{strconv.FormatInt(v.ID, 10), v.Time, termSafe(v.Action), v.Decision, dash(termSafe(v.ClientID)),
						dash(termSafe(v.Subject)), dash(termSafe(v.Error)), strconv.Itoa(v.Count), dash(termSafe(v.Detail))}
				})
		}),
	}
	f.register(cmd)
	cmd.Flags().IntVar(&limit, "limit", 100, "the most records to list")
	out.register(cmd)
	return cmd
}

func newAuditExport() *cobra.Command {
	var (
		f      auditFilterFlags
		format string
	)
	cmd := &cobra.Command{
		Use:   "export",
		Short: "Stream audit records, oldest first, as JSON lines or CSV (for a SIEM)",
		Long: `Write every audit record the filters select, oldest first, to stdout: with
--format jsonl one JSON object per line, with --format csv a header line and
one RFC 4180 row per record (CRLF line ends, values verbatim; the
audience as a JSON array).
The records are streamed as they are read: memory stays constant whatever
their number. Values are written as stored: a caller chooses its subject,
so a spreadsheet should import every column as text.`,
		Example: `  sts audit export --since 2026-12-01 --until 2026-12-01 --format jsonl > 2026-12-01.jsonl
  sts audit export --format csv --action token > tokens.csv`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if format != "jsonl" && format != "csv" {
				return fmt.Errorf("--format must be jsonl or csv, not %q", format)
			}
			af, err := f.filter(time.Now())
			if err != nil {
				return err
			}
			env, err := openData(cmd)
			if err != nil {
				return err
			}
			defer env.Close()
			bw := bufio.NewWriterSize(cmd.OutOrStdout(), 64<<10)
			var each func(*store.AuditRecord) error
			if format == "jsonl" {
				enc := json.NewEncoder(bw)
				each = func(r *store.AuditRecord) error { v := viewAudit(r); return enc.Encode(&v) }
			} else {
				writeCSVRow(bw, csvHeader)
				each = func(r *store.AuditRecord) error {
					v := viewAudit(r)
					return writeCSVRow(bw, v.csvRow())
				}
			}
			if err := env.Store.VisitAudit(cmd.Context(), af, each); err != nil {
				return err
			}
			return bw.Flush()
		},
	}
	f.register(cmd)
	cmd.Flags().StringVar(&format, "format", "jsonl", "jsonl or csv")
	return cmd
}

// verifyView is the JSON form of a verification.
type verifyView struct {
	OK        bool          `json:"ok"`
	Records   int64         `json:"records"`
	Unchained int64         `json:"unchained"`
	Chains    []chainView   `json:"chains"`
	Problems  []problemView `json:"problems"`
}

type chainView struct {
	Name       string `json:"name"`
	Records    int64  `json:"records"`
	HeadSeq    int64  `json:"head_seq"`
	HeadHash   string `json:"head_hash"`
	AnchorSeq  int64  `json:"anchor_seq"`
	AnchorHash string `json:"anchor_hash"`
	OK         bool   `json:"ok"`
}

type problemView struct {
	Kind   string `json:"kind"`
	Chain  string `json:"chain"`
	Seq    int64  `json:"seq"`
	ID     int64  `json:"id"`
	Detail string `json:"detail"`
}

func newAuditVerify() *cobra.Command {
	var (
		out  output
		tail int64
	)
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Verify the audit trail's hash chains and name the first broken record",
		Long: `Walk every hash chain of the audit trail from its retention anchor to its
head, a page of records at a time (constant memory, any number of records),
and check each record's hash, its sequence number and the head. For each
broken chain it names the first broken record (id, chain, seq) and what is
wrong: changed, missing, inserted or head mismatch; records outside every
chain written after chaining began are reported as inserted. Records written
before chaining (migration 00015) are counted as unchained, not broken.
Exits non-zero when anything is broken.

Keep the heads it prints somewhere the database's writers cannot reach: a
chain rewritten from a record to its head, head included, verifies again.`,
		Example: `  sts audit verify
  sts audit verify --tail 1000 -o json`,
		RunE: withData(&out, func(cmd *cobra.Command, args []string, env *setup.Env, asJSON bool) error {
			if tail < 0 {
				return fmt.Errorf("--tail must not be negative, not %d", tail)
			}
			rep, err := audit.Verify(cmd.Context(), env.Store, audit.VerifyOptions{Tail: tail})
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			v := verifyView{OK: rep.OK(), Records: rep.Records(), Unchained: rep.Legacy, Chains: []chainView{}, Problems: []problemView{}}
			for _, c := range rep.Chains {
				v.Chains = append(v.Chains, chainView{Name: c.Chain.Name, Records: c.Records, HeadSeq: c.Chain.Seq,
					HeadHash: c.Chain.Hash, AnchorSeq: c.Chain.AnchorSeq, AnchorHash: c.Chain.AnchorHash, OK: c.Problem == nil})
			}
			for _, p := range rep.Problems() {
				v.Problems = append(v.Problems, problemView{Kind: p.Kind, Chain: p.Chain, Seq: p.Seq, ID: p.ID, Detail: p.Detail})
			}
			if asJSON {
				if err := writeJSON(w, v); err != nil {
					return err
				}
			} else {
				printVerify(w, rep, &v)
			}
			if !rep.OK() {
				ps := rep.Problems()
				return fmt.Errorf("the audit trail does not verify: %d broken (first: %s)", len(ps), termSafe(ps[0].String()))
			}
			return nil
		}),
	}
	cmd.Flags().Int64Var(&tail, "tail", 0, "check only the last N records of each chain and its head (0: every record)")
	out.register(cmd)
	return cmd
}

func printVerify(w io.Writer, rep *audit.Report, v *verifyView) {
	for _, c := range v.Chains {
		state := "ok"
		if !c.OK {
			state = "BROKEN"
		}
		fmt.Fprintf(w, "chain %s: %s, %s checked, head seq %d %s", termSafe(c.Name), state, plural(c.Records, "record"), c.HeadSeq, dash(c.HeadHash))
		if c.AnchorSeq > 0 {
			fmt.Fprintf(w, ", pruned up to seq %d %s", c.AnchorSeq, c.AnchorHash)
		}
		fmt.Fprintln(w)
	}
	for _, p := range rep.Problems() {
		fmt.Fprintf(w, "  %s\n", termSafe(p.String()))
	}
	if rep.Tail == 0 {
		fmt.Fprintf(w, "%s written before chaining (unchained, not verifiable)\n", plural(rep.Legacy, "record"))
	}
	switch {
	case !rep.OK():
		fmt.Fprintln(w, "The audit trail does NOT verify.")
	case len(v.Chains) == 0:
		fmt.Fprintln(w, "No chained records yet: nothing to verify.")
	case rep.Tail > 0:
		fmt.Fprintf(w, "The last %s of each chain verify.\n", plural(rep.Tail, "record"))
	default:
		fmt.Fprintf(w, "The audit trail verifies: %s in %s.\n", plural(v.Records, "record"), plural(int64(len(v.Chains)), "chain"))
	}
}

// plural is "1 record", "2 records".
func plural(n int64, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return strconv.FormatInt(n, 10) + " " + noun + "s"
}
