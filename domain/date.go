package domain

import (
	"fmt"
	"time"
)

// Date is a calendar date, "YYYY-MM-DD" (due dates, statement months).
// Its string form orders chronologically.
type Date string

// ParseDate validates s as YYYY-MM-DD.
func ParseDate(s string) (Date, error) {
	t, err := time.Parse(time.DateOnly, s)
	if err != nil || t.Format(time.DateOnly) != s {
		return "", fmt.Errorf("must be a date YYYY-MM-DD")
	}
	return Date(s), nil
}

// DateOf returns the UTC calendar date of t.
func DateOf(t time.Time) Date { return Date(t.UTC().Format(time.DateOnly)) }

// Time returns midnight UTC of d.
func (d Date) Time() time.Time {
	t, _ := time.Parse(time.DateOnly, string(d))
	return t
}

// DaysAfter returns how many days d is after o (negative if before).
func (d Date) DaysAfter(o Date) int {
	return int(d.Time().Sub(o.Time()).Hours() / 24)
}

// AddDays returns the date n days after d (before, if n is negative).
func (d Date) AddDays(n int) Date { return DateOf(d.Time().AddDate(0, 0, n)) }
