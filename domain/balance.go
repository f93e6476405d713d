package domain

import (
	"sort"

	"github.com/shopspring/decimal"
)

// Aging splits what is owed by days past due.
type Aging struct {
	Current    decimal.Decimal `json:"current"`
	Days1to30  decimal.Decimal `json:"days_1_30"`
	Days31to60 decimal.Decimal `json:"days_31_60"`
	Days61to90 decimal.Decimal `json:"days_61_90"`
	Over90     decimal.Decimal `json:"days_over_90"`
}

func (g *Aging) add(dpd int, amount decimal.Decimal) {
	switch {
	case dpd <= 0:
		g.Current = g.Current.Add(amount)
	case dpd <= 30:
		g.Days1to30 = g.Days1to30.Add(amount)
	case dpd <= 60:
		g.Days31to60 = g.Days31to60.Add(amount)
	case dpd <= 90:
		g.Days61to90 = g.Days61to90.Add(amount)
	default:
		g.Over90 = g.Over90.Add(amount)
	}
}

// Balance is an account's money position on a date.
type Balance struct {
	Currency    string           `json:"currency"`
	AsOf        Date             `json:"as_of"`
	Invoiced    decimal.Decimal  `json:"invoiced"`
	Fees        decimal.Decimal  `json:"fees"`
	Paid        decimal.Decimal  `json:"paid"`
	Adjustments decimal.Decimal  `json:"adjustments"`
	Discounts   decimal.Decimal  `json:"discounts"`
	Chargebacks decimal.Decimal  `json:"chargebacks"`
	Refunded    decimal.Decimal  `json:"refunded"`
	Outstanding decimal.Decimal  `json:"outstanding"`
	Overdue     decimal.Decimal  `json:"overdue"`
	Credit      decimal.Decimal  `json:"credit"` // unallocated credit
	DaysPastDue int              `json:"days_past_due"`
	Aging       Aging            `json:"aging"`
	Products    []ProductBalance `json:"products"`
}

// ProductBalance is the part of a balance on one product's entries.
type ProductBalance struct {
	ProductReference string          `json:"product_reference"`
	Invoiced         decimal.Decimal `json:"invoiced"`
	Fees             decimal.Decimal `json:"fees"`
	Outstanding      decimal.Decimal `json:"outstanding"`
	Overdue          decimal.Decimal `json:"overdue"`
	DaysPastDue      int             `json:"days_past_due"`
	Aging            Aging           `json:"aging"`
}

// Balance computes the account's balance as of a date (aging and days past
// due are counted to asOf).
//
// outstanding = invoiced + fees + adjustments − paid − discounts
// + chargebacks + refunded, which always equals the open debits' remainders
// less unallocated credit.
func (a *Account) Balance(asOf Date) Balance {
	z := decimal.Zero
	b := Balance{Currency: a.Currency, AsOf: asOf, Invoiced: z, Fees: z, Paid: z, Adjustments: z, Discounts: z, Chargebacks: z, Refunded: z,
		Overdue: z, Credit: a.Credit, Aging: Aging{z, z, z, z, z}}
	products := map[string]*ProductBalance{}
	pb := func(ref string) *ProductBalance {
		p, ok := products[ref]
		if !ok {
			p = &ProductBalance{ProductReference: ref, Invoiced: z, Fees: z, Outstanding: z, Overdue: z, Aging: Aging{z, z, z, z, z}}
			products[ref] = p
		}
		return p
	}
	for _, e := range a.Entries {
		switch e.Kind {
		case KindInvoice:
			b.Invoiced = b.Invoiced.Add(e.Amount)
		case KindFee:
			b.Fees = b.Fees.Add(e.Amount)
		case KindAdjustment:
			b.Adjustments = b.Adjustments.Add(e.Amount)
		case KindPayment:
			b.Paid = b.Paid.Add(e.Amount)
		case KindDiscount:
			b.Discounts = b.Discounts.Add(e.Amount)
		case KindChargeback:
			b.Chargebacks = b.Chargebacks.Add(e.Amount)
		}
		if e.ProductReference != "" && (e.Kind == KindInvoice || e.Kind == KindFee) {
			p := pb(e.ProductReference)
			if e.Kind == KindInvoice {
				p.Invoiced = p.Invoiced.Add(e.Amount)
			} else {
				p.Fees = p.Fees.Add(e.Amount)
			}
		}
		rem := e.Remaining()
		if !rem.IsPositive() {
			continue
		}
		dpd := asOf.DaysAfter(e.effectiveDue())
		b.Aging.add(dpd, rem)
		if dpd > 0 {
			b.Overdue = b.Overdue.Add(rem)
			b.DaysPastDue = max(b.DaysPastDue, dpd)
		}
		if e.ProductReference != "" {
			p := pb(e.ProductReference)
			p.Outstanding = p.Outstanding.Add(rem)
			p.Aging.add(dpd, rem)
			if dpd > 0 {
				p.Overdue = p.Overdue.Add(rem)
				p.DaysPastDue = max(p.DaysPastDue, dpd)
			}
		}
	}
	for _, p := range a.Payments {
		switch p.Status {
		case PaymentCompleted:
			b.Paid = b.Paid.Add(p.Amount)
		case PaymentRefunded:
			b.Paid = b.Paid.Add(p.Amount)
			b.Refunded = b.Refunded.Add(p.Amount)
		case PaymentChargedBack:
			b.Paid = b.Paid.Add(p.Amount)
			b.Chargebacks = b.Chargebacks.Add(p.Amount)
		}
	}
	b.Outstanding = b.Invoiced.Add(b.Fees).Add(b.Adjustments).Sub(b.Paid).Sub(b.Discounts).Add(b.Chargebacks).Add(b.Refunded)
	b.Products = make([]ProductBalance, 0, len(products))
	for _, p := range products {
		b.Products = append(b.Products, *p)
	}
	sort.Slice(b.Products, func(i, j int) bool { return b.Products[i].ProductReference < b.Products[j].ProductReference })
	return b
}
