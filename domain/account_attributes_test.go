package domain_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/arrears/arrears/domain"
)

// requireCode requires err to be a *domain.Error with code (and, if given,
// naming field first).
func requireCode(t *testing.T, err error, code string, field ...string) *domain.Error {
	t.Helper()
	var de *domain.Error
	require.ErrorAs(t, err, &de)
	require.Equal(t, code, de.Code, "%v", err)
	if len(field) > 0 {
		require.NotEmpty(t, de.Fields, "%v", err)
		require.Equal(t, field[0], de.Fields[0].Field, "%v", err)
	}
	return de
}

func richAccount(t *testing.T) (*domain.Account, []domain.NewEvent) {
	t.Helper()
	a := domain.NewAccount("ten_1", "acct_1")
	evs, err := a.Open(domain.OpenAccount{Reference: "A-1", Currency: "EUR", DebtorIDs: []string{"dbt_1"},
		Products: []domain.Product{{Reference: "P1", Name: "Loan", Meta: json.RawMessage(`{"a":1}`)}},
		Scores:   []domain.Score{{Type: "risk", Value: d("0.5")}},
		Mandates: []domain.Mandate{{ID: "M1", Type: "sepa"}},
		Meta:     json.RawMessage(`{"crm":"7"}`)}, t0)
	require.NoError(t, err)
	return a, evs
}

func TestAccountUpdateRecordsOnlyChanges(t *testing.T) {
	a, all := richAccount(t)
	t1 := t0.Add(time.Hour)

	// The same values, spelt differently, change nothing.
	for name, u := range map[string]domain.AccountUpdated{
		"nothing":        {},
		"same meta":      {Meta: json.RawMessage(`{ "crm" : "7" }`)},
		"same debtors":   {DebtorIDs: &[]string{"dbt_1"}},
		"same products":  {Products: &[]domain.Product{{Reference: "P1", Name: "Loan", Meta: json.RawMessage(`{"a":1.0}`)}}},
		"same scores":    {Scores: &[]domain.Score{{Type: "risk", Value: d("0.50")}}},
		"same mandates":  {Mandates: &[]domain.Mandate{{ID: "M1", Type: "sepa"}}},
		"all of it same": {Meta: json.RawMessage(`{"crm":"7"}`), DebtorIDs: &[]string{"dbt_1"}, Mandates: &[]domain.Mandate{{ID: "M1", Type: "sepa"}}},
	} {
		evs, err := a.Update(u, t1)
		require.NoError(t, err, name)
		require.Empty(t, evs, name)
	}
	require.Equal(t, int64(1), a.Version)
	require.Equal(t, t0, a.UpdatedAt)

	// A change records only what changes.
	evs, err := a.Update(domain.AccountUpdated{Meta: json.RawMessage(`{"crm":"8"}`), DebtorIDs: &[]string{"dbt_1"}}, t1)
	require.NoError(t, err)
	require.Len(t, evs, 1)
	require.Equal(t, domain.EventAccountUpdated, evs[0].Type)
	var data map[string]any
	require.NoError(t, json.Unmarshal(evs[0].Data, &data))
	assert.Equal(t, map[string]any{"meta": map[string]any{"crm": "8"}, "at": t1.Format(time.RFC3339Nano)}, data)
	assert.JSONEq(t, `{"crm":"8"}`, string(a.Meta))
	assert.Equal(t, t1, a.UpdatedAt)
	all = append(all, evs...)

	// Emptying lists records [] (never null, which would read as
	// "unchanged"), and a replay sees them empty.
	evs, err = a.Update(domain.AccountUpdated{DebtorIDs: &[]string{}, Products: new([]domain.Product), Scores: &[]domain.Score{}, Mandates: new([]domain.Mandate)}, t1)
	require.NoError(t, err)
	require.Len(t, evs, 1)
	require.NoError(t, json.Unmarshal(evs[0].Data, &data))
	for _, list := range []string{"debtor_ids", "products", "scores", "mandates"} {
		assert.Equal(t, []any{}, data[list], list)
	}
	all = append(all, evs...)
	b := replay(t, all)
	assert.Empty(t, b.DebtorIDs)
	assert.Empty(t, b.Products)
	assert.Empty(t, b.Scores)
	assert.Empty(t, b.Mandates)
	assert.JSONEq(t, `{"crm":"8"}`, string(b.Meta))
	assert.Equal(t, a.Version, b.Version)
	assert.Equal(t, t1, b.UpdatedAt)
	// Empty again: nothing.
	evs, err = a.Update(domain.AccountUpdated{DebtorIDs: &[]string{}, Products: &[]domain.Product{}}, t1)
	require.NoError(t, err)
	require.Empty(t, evs)
}

func TestAccountUpdateValidation(t *testing.T) {
	tests := []struct {
		name  string
		u     domain.AccountUpdated
		field string
	}{
		{"meta not an object", domain.AccountUpdated{Meta: json.RawMessage(`[1]`)}, "meta"},
		{"meta null", domain.AccountUpdated{Meta: json.RawMessage(`null`)}, "meta"},
		{"debtor twice", domain.AccountUpdated{DebtorIDs: &[]string{"dbt_1", "dbt_1"}}, "debtor_ids[1]"},
		{"product without reference", domain.AccountUpdated{Products: &[]domain.Product{{Name: "x"}}}, "products[0].reference"},
		{"product meta not an object", domain.AccountUpdated{Products: &[]domain.Product{{Reference: "P", Meta: json.RawMessage(`"x"`)}}}, "products[0].meta"},
		{"score twice", domain.AccountUpdated{Scores: &[]domain.Score{{Type: "s"}, {Type: "s"}}}, "scores[1].type"},
		{"mandate id too long", domain.AccountUpdated{Mandates: &[]domain.Mandate{{ID: string(make([]byte, 201))}}}, "mandates[0].id"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, _ := richAccount(t)
			evs, err := a.Update(tc.u, t0)
			requireCode(t, err, domain.EINVALID, tc.field)
			require.Empty(t, evs)
			require.Equal(t, int64(1), a.Version)
		})
	}
	_, err := domain.NewAccount("ten_1", "acct_x").Update(domain.AccountUpdated{Meta: json.RawMessage(`{}`)}, t0)
	requireCode(t, err, domain.ENOTFOUND)
}

func TestAccountAttributeLists(t *testing.T) {
	a, all := richAccount(t)
	keep := func(evs []domain.NewEvent, err error) {
		t.Helper()
		require.NoError(t, err)
		all = append(all, evs...)
	}
	at := t0.Add(time.Minute)

	// Add: new, the same again, different content.
	created, evs, err := domain.ProductList.Add(a, domain.Product{Reference: "P2", Code: "c"}, at)
	require.True(t, created)
	require.Len(t, evs, 1)
	keep(evs, err)
	created, evs, err = domain.ProductList.Add(a, domain.Product{Reference: "P2", Code: "c", Meta: json.RawMessage(`{}`)}, at)
	require.NoError(t, err)
	require.False(t, created)
	require.Empty(t, evs)
	_, evs, err = domain.ProductList.Add(a, domain.Product{Reference: "P2", Code: "other"}, at)
	de := requireCode(t, err, domain.ECONFLICT, "reference")
	require.Equal(t, "product_exists", de.Reason)
	require.Empty(t, evs)
	_, _, err = domain.ProductList.Add(a, domain.Product{Name: "no reference"}, at)
	requireCode(t, err, domain.EINVALID, "reference")
	_, _, err = domain.ScoreList.Add(a, domain.Score{Type: "x", Meta: json.RawMessage(`1`)}, at)
	requireCode(t, err, domain.EINVALID, "meta")
	assert.Equal(t, []string{"P1", "P2"}, refs(a.Products))

	// Replace: missing, key changed, the same, changed.
	_, err = domain.ScoreList.Replace(a, "nope", domain.Score{Type: "nope"}, at)
	requireCode(t, err, domain.ENOTFOUND)
	_, err = domain.ScoreList.Replace(a, "risk", domain.Score{Type: "other", Value: d("1")}, at)
	requireCode(t, err, domain.EINVALID, "type")
	evs, err = domain.ScoreList.Replace(a, "risk", domain.Score{Type: "risk", Value: d("0.5")}, at)
	require.NoError(t, err)
	require.Empty(t, evs)
	keep(domain.ScoreList.Replace(a, "risk", domain.Score{Type: "risk", Value: d("0.75"), Provider: "schufa"}, at))
	s, ok := domain.ScoreList.Find(a, "risk")
	require.True(t, ok)
	assert.Equal(t, "0.75", s.Value.String())
	assert.Equal(t, "schufa", s.Provider)

	// Remove: missing, present (the order of the rest is kept).
	_, _, err = domain.MandateList.Remove(a, "nope", at)
	requireCode(t, err, domain.ENOTFOUND)
	_, evs, err = domain.MandateList.Add(a, domain.Mandate{ID: "M2"}, at)
	keep(evs, err)
	removed, evs, err := domain.MandateList.Remove(a, "M1", at)
	keep(evs, err)
	assert.Equal(t, "sepa", removed.Type)
	assert.Equal(t, []domain.Mandate{{ID: "M2"}}, domain.MandateList.Items(a))
	_, evs, err = domain.ProductList.Remove(a, "P1", at)
	keep(evs, err)
	_, evs, err = domain.ProductList.Remove(a, "P2", at)
	keep(evs, err)
	assert.Equal(t, []domain.Product{}, domain.ProductList.Items(a))

	// Debtors.
	added, evs, err := a.AddDebtor("dbt_2", at)
	require.True(t, added)
	keep(evs, err)
	added, evs, err = a.AddDebtor("dbt_2", at)
	require.NoError(t, err)
	require.False(t, added)
	require.Empty(t, evs)
	_, _, err = a.AddDebtor("", at)
	requireCode(t, err, domain.EINVALID, "debtor_id")
	_, err = a.RemoveDebtor("dbt_9", at)
	requireCode(t, err, domain.ENOTFOUND)
	keep(a.RemoveDebtor("dbt_1", at))
	assert.Equal(t, []string{"dbt_2"}, a.DebtorIDs)

	// The events alone rebuild the same state.
	b := replay(t, all)
	assert.Equal(t, a.DebtorIDs, b.DebtorIDs)
	assert.Empty(t, b.Products)
	assert.Equal(t, a.Scores, b.Scores)
	assert.Equal(t, a.Mandates, b.Mandates)
	assert.Equal(t, a.Version, b.Version)

	// A closed (never opened) account has none of it.
	empty := domain.NewAccount("ten_1", "acct_2")
	_, _, err = domain.ProductList.Add(empty, domain.Product{Reference: "P"}, at)
	requireCode(t, err, domain.ENOTFOUND)
	_, err = empty.RemoveDebtor("dbt_1", at)
	requireCode(t, err, domain.ENOTFOUND)
}

// TestAccountAttributeListsDoNotAlias: the lists a command works on are
// copies; a refused command leaves the account as it was.
func TestAccountAttributeListsDoNotAlias(t *testing.T) {
	a, _ := richAccount(t)
	items := domain.ProductList.Items(a)
	items[0].Name = "changed"
	assert.Equal(t, "Loan", a.Products[0].Name)
	_, err := domain.ProductList.Replace(a, "P1", domain.Product{Reference: "P1", Meta: json.RawMessage(`"bad"`)}, t0)
	requireCode(t, err, domain.EINVALID, "meta")
	assert.Equal(t, "Loan", a.Products[0].Name)
	assert.Equal(t, int64(1), a.Version)
}

func refs(ps []domain.Product) []string {
	out := []string{}
	for _, p := range ps {
		out = append(out, p.Reference)
	}
	return out
}
