package domain

import (
	"encoding/json"
	"fmt"
	"net/mail"
	"regexp"
	"strings"
	"time"
)

// DebtorType distinguishes people from organisations.
type DebtorType string

// Debtor types.
const (
	DebtorNatural DebtorType = "natural" // a person: first and last name required
	DebtorLegal   DebtorType = "legal"   // a company: company name required
)

// Address is a postal address.
type Address struct {
	Line1      string `json:"line1,omitempty"`
	Line2      string `json:"line2,omitempty"`
	City       string `json:"city,omitempty"`
	PostalCode string `json:"postal_code,omitempty"`
	Region     string `json:"region,omitempty"`
	Country    string `json:"country,omitempty"` // ISO 3166-1 alpha-2
}

// DebtorFields are a debtor's attributes; on update, nil means unchanged.
type DebtorFields struct {
	Reference   *string         `json:"reference,omitempty"` // the creditor's own id for this debtor
	Type        *DebtorType     `json:"type,omitempty"`
	FirstName   *string         `json:"first_name,omitempty"`
	LastName    *string         `json:"last_name,omitempty"`
	CompanyName *string         `json:"company_name,omitempty"`
	Email       *string         `json:"email,omitempty"`
	Phone       *string         `json:"phone,omitempty"`
	BirthDate   *Date           `json:"birth_date,omitempty"`
	Address     *Address        `json:"address,omitempty"`
	Locale      *string         `json:"locale,omitempty"`
	Meta        json.RawMessage `json:"meta,omitempty"`
}

// Debtor event types.
const (
	EventDebtorCreated = "debtor.created"
	EventDebtorUpdated = "debtor.updated"
)

// DebtorChanged is the data of debtor.created and debtor.updated.
type DebtorChanged struct {
	DebtorFields
	Sandbox bool      `json:"sandbox,omitempty"`
	At      time.Time `json:"at"`
}

// Debtor is a natural or legal person who owes money.
type Debtor struct {
	ID, TenantID string
	Version      int64
	Created      bool
	Sandbox      bool
	Reference    string
	Type         DebtorType
	FirstName    string
	LastName     string
	CompanyName  string
	Email        string
	Phone        string
	BirthDate    Date
	Address      *Address
	Locale       string
	Meta         json.RawMessage
	CreatedAt    time.Time
	UpdatedAt    time.Time
}

// NewDebtor returns the empty state of debtor id before its first event.
func NewDebtor(tenantID, id string) *Debtor { return &Debtor{ID: id, TenantID: tenantID} }

// AppliedEvents implements Aggregate.
func (d *Debtor) AppliedEvents() int64 { return d.Version }

// Name is how the debtor is addressed.
func (d *Debtor) Name() string {
	if d.Type == DebtorLegal {
		return d.CompanyName
	}
	return strings.TrimSpace(d.FirstName + " " + d.LastName)
}

// Create creates the debtor.
func (d *Debtor) Create(f DebtorFields, sandbox bool, at time.Time) ([]NewEvent, error) {
	if d.Created {
		return nil, &Error{Code: ECONFLICT, Reason: "debtor_exists", Message: fmt.Sprintf("debtor %s already exists", d.ID)}
	}
	if f.Type == nil {
		t := DebtorNatural
		f.Type = &t
	}
	next := *d
	next.apply(f)
	if err := next.validate(); err != nil {
		return nil, err
	}
	var out []NewEvent
	return out, d.record(&out, EventDebtorCreated, DebtorChanged{DebtorFields: f, Sandbox: sandbox, At: at})
}

// Update changes the fields set in f; a change that leaves the debtor
// invalid (e.g. a legal debtor without a company name) is refused. No
// change is a no-op.
func (d *Debtor) Update(f DebtorFields, at time.Time) ([]NewEvent, error) {
	if !d.Created {
		return nil, Errorf(ENOTFOUND, "debtor %s not found", d.ID)
	}
	next := *d
	next.apply(f)
	if err := next.validate(); err != nil {
		return nil, err
	}
	if next.same(d) {
		return nil, nil
	}
	var out []NewEvent
	return out, d.record(&out, EventDebtorUpdated, DebtorChanged{DebtorFields: f, At: at})
}

func (d *Debtor) same(o *Debtor) bool {
	return d.Reference == o.Reference && d.Type == o.Type && d.FirstName == o.FirstName && d.LastName == o.LastName &&
		d.CompanyName == o.CompanyName && d.Email == o.Email && d.Phone == o.Phone && d.BirthDate == o.BirthDate &&
		d.Locale == o.Locale && jsonEqual(d.Meta, o.Meta) && fmt.Sprint(d.Address) == fmt.Sprint(o.Address)
}

var phoneSyntax = regexp.MustCompile(`^\+?[0-9][0-9 ()\-]{4,24}$`)

func (d *Debtor) validate() error {
	var fe []FieldError
	switch d.Type {
	case DebtorNatural:
		if strings.TrimSpace(d.FirstName) == "" {
			fe = append(fe, FieldError{Field: "first_name", Error: "is required for a natural person"})
		}
		if strings.TrimSpace(d.LastName) == "" {
			fe = append(fe, FieldError{Field: "last_name", Error: "is required for a natural person"})
		}
	case DebtorLegal:
		if strings.TrimSpace(d.CompanyName) == "" {
			fe = append(fe, FieldError{Field: "company_name", Error: "is required for a legal person"})
		}
	default:
		fe = append(fe, FieldError{Field: "type", Error: "must be natural or legal"})
	}
	if d.Email != "" {
		if a, err := mail.ParseAddress(d.Email); err != nil || a.Address != d.Email {
			fe = append(fe, FieldError{Field: "email", Error: "must be an email address"})
		}
	}
	if d.Phone != "" && !phoneSyntax.MatchString(d.Phone) {
		fe = append(fe, FieldError{Field: "phone", Error: "must be a phone number, e.g. +49 30 1234567"})
	}
	if d.BirthDate != "" {
		if _, err := ParseDate(string(d.BirthDate)); err != nil {
			fe = append(fe, FieldError{Field: "birth_date", Error: err.Error()})
		}
	}
	if d.Address != nil && d.Address.Country != "" && len(d.Address.Country) != 2 {
		fe = append(fe, FieldError{Field: "address.country", Error: "must be an ISO 3166-1 alpha-2 code, e.g. DE"})
	}
	if len(d.Reference) > 200 {
		fe = append(fe, FieldError{Field: "reference", Error: "must be at most 200 characters"})
	}
	if len(d.Meta) > 0 && (d.Meta[0] != '{' || !json.Valid(d.Meta)) {
		fe = append(fe, FieldError{Field: "meta", Error: "must be a JSON object"})
	}
	if len(fe) > 0 {
		return Invalid("invalid debtor", fe...)
	}
	return nil
}

func (d *Debtor) apply(f DebtorFields) {
	set := func(dst *string, src *string) {
		if src != nil {
			*dst = strings.TrimSpace(*src)
		}
	}
	set(&d.Reference, f.Reference)
	set(&d.FirstName, f.FirstName)
	set(&d.LastName, f.LastName)
	set(&d.CompanyName, f.CompanyName)
	set(&d.Email, f.Email)
	set(&d.Phone, f.Phone)
	set(&d.Locale, f.Locale)
	if f.Type != nil {
		d.Type = *f.Type
	}
	if f.BirthDate != nil {
		d.BirthDate = *f.BirthDate
	}
	if f.Address != nil {
		a := *f.Address
		d.Address = &a
	}
	if f.Meta != nil {
		d.Meta = f.Meta
	}
}

func (d *Debtor) record(out *[]NewEvent, typ string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("debtor %s: encode %s: %w", d.ID, typ, err)
	}
	if err := d.Apply(typ, data); err != nil {
		return err
	}
	*out = append(*out, NewEvent{Type: typ, Data: data})
	return nil
}

// Apply folds one event into the debtor: the only way its state changes.
func (d *Debtor) Apply(typ string, data json.RawMessage) error {
	var e DebtorChanged
	if err := json.Unmarshal(data, &e); err != nil {
		return fmt.Errorf("debtor %s: apply %s: %w", d.ID, typ, err)
	}
	switch typ {
	case EventDebtorCreated:
		d.Created, d.Sandbox, d.CreatedAt = true, e.Sandbox, e.At
	case EventDebtorUpdated:
	default:
		return fmt.Errorf("debtor %s: apply %s: unknown event type", d.ID, typ)
	}
	d.apply(e.DebtorFields)
	d.UpdatedAt = e.At
	d.Version++
	return nil
}
