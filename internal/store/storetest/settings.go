package storetest

import (
	"errors"
	"testing"

	"github.com/keybridge/sts/internal/store"
)

var settingTests = []test{
	{"GetPut", testSettingGetPut},
}

func testSettingGetPut(t *testing.T, s store.Store) {
	ctx := t.Context()
	if _, err := s.GetSetting(ctx, store.SettingIssuer); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetSetting of an unset name: err = %v, want ErrNotFound", err)
	}
	first := &store.Setting{Name: store.SettingIssuer, Value: "https://sts.example.com", UpdatedAt: at(0)}
	must(t, s.PutSetting(ctx, first))
	got, err := s.GetSetting(ctx, store.SettingIssuer)
	must(t, err)
	if got.Name != first.Name || got.Value != first.Value || !sameTime(got.UpdatedAt, first.UpdatedAt) {
		t.Errorf("GetSetting = %+v, want %+v", got, first)
	}
	// Put again replaces; other names are untouched.
	must(t, s.PutSetting(ctx, &store.Setting{Name: store.SettingAddr, Value: "127.0.0.1:9090", UpdatedAt: at(1)}))
	second := &store.Setting{Name: store.SettingIssuer, Value: "http://127.0.0.1:9090", UpdatedAt: at(2)}
	must(t, s.PutSetting(ctx, second))
	got, err = s.GetSetting(ctx, store.SettingIssuer)
	must(t, err)
	if got.Value != second.Value || !sameTime(got.UpdatedAt, second.UpdatedAt) {
		t.Errorf("GetSetting after replacing = %+v, want %+v", got, second)
	}
	addr, err := s.GetSetting(ctx, store.SettingAddr)
	must(t, err)
	if addr.Value != "127.0.0.1:9090" {
		t.Errorf("GetSetting(%s) = %+v", store.SettingAddr, addr)
	}
}
