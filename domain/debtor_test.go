package domain_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/arrears/arrears/domain"
)

func ptr[T any](v T) *T { return &v }

func TestDebtorValidation(t *testing.T) {
	legal := domain.DebtorLegal
	tests := []struct {
		name  string
		in    domain.DebtorFields
		field string
	}{
		{"natural needs first name", domain.DebtorFields{LastName: ptr("Doe")}, "first_name"},
		{"natural needs last name", domain.DebtorFields{FirstName: ptr("Jane")}, "last_name"},
		{"legal needs company", domain.DebtorFields{Type: &legal, FirstName: ptr("x")}, "company_name"},
		{"unknown type", domain.DebtorFields{Type: ptr(domain.DebtorType("robot")), FirstName: ptr("a"), LastName: ptr("b")}, "type"},
		{"bad email", domain.DebtorFields{FirstName: ptr("a"), LastName: ptr("b"), Email: ptr("not-an-email")}, "email"},
		{"display-name email", domain.DebtorFields{FirstName: ptr("a"), LastName: ptr("b"), Email: ptr("Jane <j@x.io>")}, "email"},
		{"bad phone", domain.DebtorFields{FirstName: ptr("a"), LastName: ptr("b"), Phone: ptr("call me")}, "phone"},
		{"bad birth date", domain.DebtorFields{FirstName: ptr("a"), LastName: ptr("b"), BirthDate: ptr(domain.Date("1990-13-01"))}, "birth_date"},
		{"bad country", domain.DebtorFields{FirstName: ptr("a"), LastName: ptr("b"), Address: &domain.Address{Country: "DEU"}}, "address.country"},
		{"meta not object", domain.DebtorFields{FirstName: ptr("a"), LastName: ptr("b"), Meta: []byte(`[1]`)}, "meta"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := domain.NewDebtor("ten_1", "dbt_1")
			evs, err := d.Create(tc.in, false, t0)
			var de *domain.Error
			require.ErrorAs(t, err, &de)
			assert.Equal(t, domain.EINVALID, de.Code)
			assert.Equal(t, tc.field, de.Fields[0].Field)
			assert.Empty(t, evs)
			assert.False(t, d.Created)
		})
	}
}

func TestDebtorLifecycle(t *testing.T) {
	d := domain.NewDebtor("ten_1", "dbt_1")
	evs, err := d.Create(domain.DebtorFields{Reference: ptr("C-42"), FirstName: ptr(" Jane "), LastName: ptr("Doe"), Email: ptr("jane@example.com")}, true, t0)
	require.NoError(t, err)
	require.Len(t, evs, 1)
	assert.Equal(t, "Jane Doe", d.Name())
	assert.True(t, d.Sandbox)

	_, err = d.Create(domain.DebtorFields{FirstName: ptr("x"), LastName: ptr("y")}, false, t0)
	assert.Equal(t, domain.ECONFLICT, domain.ErrorCode(err))

	more, err := d.Update(domain.DebtorFields{Phone: ptr("+49 30 1234567")}, t0)
	require.NoError(t, err)
	evs = append(evs, more...)
	none, err := d.Update(domain.DebtorFields{Phone: ptr("+49 30 1234567")}, t0)
	require.NoError(t, err)
	assert.Empty(t, none, "no change, no event")

	legal := domain.DebtorLegal
	_, err = d.Update(domain.DebtorFields{Type: &legal}, t0)
	assert.Equal(t, domain.EINVALID, domain.ErrorCode(err), "a legal debtor needs a company name")

	r := domain.NewDebtor("ten_1", "dbt_1")
	for _, e := range evs {
		require.NoError(t, r.Apply(e.Type, e.Data))
	}
	assert.Equal(t, *d, *r, "replay equals live")
	assert.Equal(t, int64(2), r.Version)
}
