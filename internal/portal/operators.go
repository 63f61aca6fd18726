package portal

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/keybridge/sts/internal/store"
)

// AdminName is the operator created on first start.
const AdminName = "admin"

// OperatorStore is what operator management needs.
type OperatorStore interface {
	store.Operators
	store.Sessions
}

// CheckUsername accepts 1 to 64 characters of letters, digits and
// ". _ - @". Names starting with "acct-" are refused: the sign-in form
// takes account ids in the same field.
func CheckUsername(name string) error {
	if name == "" || len(name) > 64 {
		return errors.New("an operator name has 1 to 64 characters")
	}
	for _, c := range name {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("._-@", c)
		if !ok {
			return fmt.Errorf("an operator name may contain letters, digits and . _ - @, not %q", c)
		}
	}
	if strings.HasPrefix(strings.ToLower(name), "acct-") {
		return errors.New(`an operator name must not start with "acct-" (account ids do)`)
	}
	return nil
}

// CheckNewPassword refuses passwords too short to resist guessing.
func CheckNewPassword(pw string) error {
	if len(pw) < 12 {
		return errors.New("a password has at least 12 characters")
	}
	if len(pw) > 1024 {
		return errors.New("a password has at most 1024 characters")
	}
	return nil
}

// CreateOperator stores a new operator with the argon2id hash of password
// (DefaultPasswordParams when p is zero); store.ErrConflict if the name is
// taken.
func CreateOperator(ctx context.Context, st store.Operators, name, password string, p PasswordParams, now time.Time) error {
	if err := CheckUsername(name); err != nil {
		return err
	}
	if err := CheckNewPassword(password); err != nil {
		return err
	}
	if p == (PasswordParams{}) {
		p = DefaultPasswordParams
	}
	h, err := HashPassword(password, p)
	if err != nil {
		return err
	}
	now = now.UTC()
	return st.CreateOperator(ctx, &store.Operator{Username: name, PasswordHash: h, CreatedAt: now, UpdatedAt: now})
}

// ResetPassword replaces an operator's password and signs out every
// session of the operator.
func ResetPassword(ctx context.Context, st OperatorStore, name, password string, p PasswordParams, now time.Time) error {
	if err := CheckNewPassword(password); err != nil {
		return err
	}
	if p == (PasswordParams{}) {
		p = DefaultPasswordParams
	}
	h, err := HashPassword(password, p)
	if err != nil {
		return err
	}
	if _, err := st.UpdateOperator(ctx, name, func(o *store.Operator) error {
		o.PasswordHash, o.UpdatedAt = h, now.UTC()
		return nil
	}); err != nil {
		return err
	}
	return st.DeleteSubjectSessions(ctx, operatorSubject(name))
}

// EnsureAdmin creates the operator "admin" with a generated password when
// there is no operator at all (the first start), and returns that password
// so that it can be shown once. created is false when operators exist
// (also when another instance created one at the same moment).
func EnsureAdmin(ctx context.Context, st store.Operators, now time.Time) (password string, created bool, err error) {
	ops, err := st.ListOperators(ctx)
	if err != nil {
		return "", false, err
	}
	if len(ops) > 0 {
		return "", false, nil
	}
	password = GeneratePassword()
	err = CreateOperator(ctx, st, AdminName, password, DefaultPasswordParams, now)
	if errors.Is(err, store.ErrConflict) {
		return "", false, nil
	}
	if err != nil {
		return "", false, err
	}
	return password, true, nil
}

func operatorSubject(name string) string { return "operator:" + name }
func accountSubject(id string) string    { return "account:" + id }
