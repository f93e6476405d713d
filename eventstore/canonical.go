package eventstore

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/shopspring/decimal"

	"github.com/arrears/arrears/domain"
)

// recordedAtLayout is how recorded_at enters the hash: UTC, microseconds
// (PostgreSQL's timestamptz precision), so a read-back hashes identically.
const recordedAtLayout = "2006-01-02T15:04:05.000000Z"

// chainHash returns SHA-256(prev ‖ canonical(e)), where canonical(e) is every
// field of the event as a length-prefixed string, with data and metadata in
// canonical JSON (cd and cm, from canonicalJSON). prev is nil (32 zero bytes)
// for a stream's first event.
func chainHash(prev []byte, e *domain.Event, cd, cm []byte) []byte {
	if prev == nil {
		prev = make([]byte, sha256.Size)
	}
	// The hashed bytes in one buffer, one Sum: no allocation per field.
	var num [32]byte
	buf := make([]byte, 0, len(prev)+10*4+len(e.ID)+len(e.TenantID)+len(e.StreamType)+len(e.StreamID)+len(e.Type)+len(cd)+len(cm)+64)
	buf = append(buf, prev...)
	buf = appendField(buf, e.ID)
	buf = appendField(buf, e.TenantID)
	buf = appendField(buf, e.StreamType)
	buf = appendField(buf, e.StreamID)
	buf = appendField(buf, strconv.AppendInt(num[:0], e.StreamVersion, 10))
	buf = appendField(buf, e.Type)
	buf = appendField(buf, strconv.AppendInt(num[:0], int64(e.SchemaVersion), 10))
	buf = appendField(buf, cd)
	buf = appendField(buf, cm)
	buf = appendField(buf, e.RecordedAt.UTC().AppendFormat(num[:0], recordedAtLayout))
	sum := sha256.Sum256(buf)
	return sum[:]
}

// appendField appends b length-prefixed (4 bytes, big-endian), as
// chainHash hashes each field.
func appendField[S string | []byte](buf []byte, b S) []byte {
	buf = binary.BigEndian.AppendUint32(buf, uint32(len(b)))
	return append(buf, b...)
}

// canonicalJSON re-encodes a JSON document so that every encoding of the same
// value yields the same bytes, in particular the text PostgreSQL's jsonb
// gives back: object keys sorted, no insignificant white space, numbers in
// shortest exact decimal form ("12.50", "1.25e1" → "12.5"), no HTML escaping.
// Of duplicate keys the last one counts.
//
// It is the reference definition (canonicalJSONSlow: decode with
// encoding/json, re-encode) done in one pass without building the value:
// it runs for every appended and every verified event. Invalid JSON goes
// the reference way, with its errors.
func canonicalJSON(b []byte) ([]byte, error) {
	if !json.Valid(b) {
		return canonicalJSONSlow(b)
	}
	c := canonicalizer{in: b}
	out, err := c.value(make([]byte, 0, len(b)))
	if err != nil {
		return nil, err
	}
	return out, nil
}

// canonicalizer re-encodes a valid JSON document canonically. An object's
// members are found first (keys decoded, values skipped), then each value
// is re-encoded from the input in key order: no intermediate values.
type canonicalizer struct {
	in []byte
	i  int
}

func (c *canonicalizer) space() {
	for c.i < len(c.in) {
		switch c.in[c.i] {
		case ' ', '\t', '\n', '\r':
			c.i++
		default:
			return
		}
	}
}

// value appends the canonical form of the value at c.i to out.
func (c *canonicalizer) value(out []byte) ([]byte, error) {
	c.space()
	switch b := c.in[c.i]; b {
	case '{':
		return c.object(out)
	case '[':
		c.i++
		out = append(out, '[')
		c.space()
		if c.in[c.i] == ']' {
			c.i++
			return append(out, ']'), nil
		}
		for {
			var err error
			if out, err = c.value(out); err != nil {
				return nil, err
			}
			c.space()
			if c.in[c.i] == ']' {
				c.i++
				return append(out, ']'), nil
			}
			c.i++ // ','
			out = append(out, ',')
		}
	case '"':
		start := c.i
		if c.str() {
			return append(out, c.in[start:c.i]...), nil // as written is canonical
		}
		var s string
		if err := json.Unmarshal(c.in[start:c.i], &s); err != nil {
			return nil, err
		}
		return appendJSONString(out, s), nil
	case 't':
		c.i += 4
		return append(out, "true"...), nil
	case 'f':
		c.i += 5
		return append(out, "false"...), nil
	case 'n':
		c.i += 4
		return append(out, "null"...), nil
	default: // a number
		start := c.i
		integer := true
		for ; c.i < len(c.in); c.i++ {
			b := c.in[c.i]
			if b == '.' || b == 'e' || b == 'E' || b == '+' {
				integer = false
			} else if b != '-' && (b < '0' || b > '9') {
				break
			}
		}
		t := c.in[start:c.i]
		if integer && string(t) != "-0" { // JSON has no leading zeros: as written is canonical
			return append(out, t...), nil
		}
		d, err := decimal.NewFromString(string(t))
		if err != nil {
			return nil, fmt.Errorf("number %q: %w", t, err)
		}
		return append(out, d.String()...), nil
	}
}

// str skips the string token at c.i and reports whether it is plain: no
// escapes, only printable ASCII, so that its text as written is both its
// value and its canonical encoding.
func (c *canonicalizer) str() (plain bool) {
	plain = true
	for c.i++; ; c.i++ {
		switch b := c.in[c.i]; {
		case b == '"':
			c.i++
			return plain
		case b == '\\':
			plain = false
			c.i++ // the escaped character
		case b >= utf8.RuneSelf:
			plain = false
		}
	}
}

// skip skips the value at c.i.
func (c *canonicalizer) skip() {
	c.space()
	switch c.in[c.i] {
	case '"':
		c.str()
	case '{', '[':
		depth := 0
		for {
			switch c.in[c.i] {
			case '"':
				c.str()
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
			}
			c.i++
			if depth == 0 {
				return
			}
		}
	default:
		for c.i < len(c.in) && strings.IndexByte(",}] \t\n\r", c.in[c.i]) < 0 {
			c.i++
		}
	}
}

// member is an object member: its decoded key, and where its value starts
// in the input.
type member struct {
	key   []byte
	value int
}

func (c *canonicalizer) object(out []byte) ([]byte, error) {
	var buf [16]member
	members := buf[:0]
	c.i++ // '{'
	for {
		c.space()
		if c.in[c.i] == '}' {
			c.i++
			break
		}
		if c.in[c.i] == ',' {
			c.i++
			c.space()
		}
		start := c.i
		var key []byte
		if c.str() {
			key = c.in[start+1 : c.i-1]
		} else {
			var s string
			if err := json.Unmarshal(c.in[start:c.i], &s); err != nil {
				return nil, err
			}
			key = []byte(s)
		}
		c.space()
		c.i++ // ':'
		members = append(members, member{key: key, value: c.i})
		c.skip()
	}
	end := c.i
	// In key order; of equal keys (stable: in document order) the last.
	slices.SortStableFunc(members, func(a, b member) int { return bytes.Compare(a.key, b.key) })
	out = append(out, '{')
	first := true
	for i, m := range members {
		if i+1 < len(members) && bytes.Equal(members[i+1].key, m.key) {
			continue
		}
		if !first {
			out = append(out, ',')
		}
		first = false
		out = appendJSONString(out, m.key)
		out = append(out, ':')
		c.i = m.value
		var err error
		if out, err = c.value(out); err != nil {
			return nil, err
		}
	}
	c.i = end
	return append(out, '}'), nil
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string exactly as encoding/json's
// Encoder with SetEscapeHTML(false) writes it: \" \\ \b \f \n \r \t, other
// control characters as \u00XX, U+2028 and U+2029 escaped, invalid UTF-8
// as \ufffd, everything else as it is.
func appendJSONString[S string | []byte](out []byte, s S) []byte {
	out = append(out, '"')
	start := 0
	for i := 0; i < len(s); {
		if b := s[i]; b < utf8.RuneSelf {
			if b >= 0x20 && b != '"' && b != '\\' {
				i++
				continue
			}
			out = append(out, s[start:i]...)
			switch b {
			case '\\', '"':
				out = append(out, '\\', b)
			case '\b':
				out = append(out, '\\', 'b')
			case '\f':
				out = append(out, '\\', 'f')
			case '\n':
				out = append(out, '\\', 'n')
			case '\r':
				out = append(out, '\\', 'r')
			case '\t':
				out = append(out, '\\', 't')
			default:
				out = append(out, '\\', 'u', '0', '0', hexDigits[b>>4], hexDigits[b&0xF])
			}
			i++
			start = i
			continue
		}
		n := min(len(s)-i, utf8.UTFMax)
		r, size := utf8.DecodeRuneInString(string(s[i : i+n]))
		if r == utf8.RuneError && size == 1 {
			out = append(out, s[start:i]...)
			out = append(out, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			out = append(out, s[start:i]...)
			out = append(out, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	out = append(out, s[start:]...)
	return append(out, '"')
}

// canonicalJSONSlow is canonicalJSON by its definition: decode with
// encoding/json (numbers as written), re-encode canonically.
func canonicalJSONSlow(b []byte) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, fmt.Errorf("trailing data after JSON value")
	}
	var out bytes.Buffer
	out.Grow(len(b))
	if err := writeCanonical(&out, v); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

func writeCanonical(out *bytes.Buffer, v any) error {
	switch t := v.(type) {
	case nil:
		out.WriteString("null")
	case bool:
		out.WriteString(strconv.FormatBool(t))
	case json.Number:
		d, err := decimal.NewFromString(string(t))
		if err != nil {
			return fmt.Errorf("number %q: %w", t, err)
		}
		out.WriteString(d.String())
	case string:
		writeString(out, t)
	case []any:
		out.WriteByte('[')
		for i, x := range t {
			if i > 0 {
				out.WriteByte(',')
			}
			if err := writeCanonical(out, x); err != nil {
				return err
			}
		}
		out.WriteByte(']')
	case map[string]any:
		keys := make([]string, 0, len(t))
		for k := range t {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		out.WriteByte('{')
		for i, k := range keys {
			if i > 0 {
				out.WriteByte(',')
			}
			writeString(out, k)
			out.WriteByte(':')
			if err := writeCanonical(out, t[k]); err != nil {
				return err
			}
		}
		out.WriteByte('}')
	default:
		return fmt.Errorf("unexpected JSON value %T", v)
	}
	return nil
}

func writeString(out *bytes.Buffer, s string) {
	enc := json.NewEncoder(out)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s) // cannot fail for a string
	out.Truncate(out.Len() - 1)
}

// recordedAt truncates t to what PostgreSQL stores.
func recordedAt(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }
