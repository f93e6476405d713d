package eventstore

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"time"

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
	h := sha256.New()
	if prev == nil {
		prev = make([]byte, sha256.Size)
	}
	h.Write(prev)
	var n [4]byte
	field := func(b []byte) {
		binary.BigEndian.PutUint32(n[:], uint32(len(b)))
		h.Write(n[:])
		h.Write(b)
	}
	field([]byte(e.ID))
	field([]byte(e.TenantID))
	field([]byte(e.StreamType))
	field([]byte(e.StreamID))
	field(strconv.AppendInt(nil, e.StreamVersion, 10))
	field([]byte(e.Type))
	field(strconv.AppendInt(nil, int64(e.SchemaVersion), 10))
	field(cd)
	field(cm)
	field([]byte(e.RecordedAt.UTC().Format(recordedAtLayout)))
	return h.Sum(nil)
}

// canonicalJSON re-encodes a JSON document so that every encoding of the same
// value yields the same bytes, in particular the text PostgreSQL's jsonb
// gives back: object keys sorted, no insignificant white space, numbers in
// shortest exact decimal form ("12.50", "1.25e1" → "12.5"), no HTML escaping.
func canonicalJSON(b []byte) ([]byte, error) {
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
