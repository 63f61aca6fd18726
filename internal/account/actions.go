package account

import "github.com/keybridge/sts/internal/store"

// Audit actions of account changes: the CLI and the portal record the same
// change under the same name, so that one filter finds it whoever made it.
const (
	ActionCreate       = "account.create"
	ActionUpdate       = "account.update"
	ActionSuspend      = "account.suspend"
	ActionActivate     = "account.activate"
	ActionClose        = "account.close"
	ActionIssueIAT     = "account.issue_iat"
	ActionRotateSecret = "account.rotate_secret"
	ActionCertIssue    = "account.cert_issue"
	ActionCertUpload   = "account.cert_upload"
	ActionCertDelete   = "account.cert_delete"
)

// StatusAction is the audit action of a change to status st.
func StatusAction(st store.AccountStatus) string {
	switch st {
	case store.AccountSuspended:
		return ActionSuspend
	case store.AccountClosed:
		return ActionClose
	}
	return ActionActivate
}
