package eventstore

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/arrears/arrears/domain"
)

var entryPostedData = []byte(`{"entry":{"reference":"INV-123456","kind":"invoice","amount":"125.50","due_date":"2026-12-01","original_due_date":"2026-12-01"},"credit_applied":"0","to_credit":"0","at":"2026-11-21T08:00:00.123456789Z"}`)

// canonicalCorpus is JSON that exercises every branch of canonicalJSON.
var canonicalCorpus = []string{
	string(entryPostedData),
	`{}`, `[]`, `null`, `true`, `false`, `0`, `-0`, `1e3`, `1.25e1`, `12.50`, `-0.000`, `1E+2`, `123456789012345678901234567890.1230`,
	` { "b" : 1 , "a" : [ 1 , 2.0 , { "z" : null , "y" : true } ] , "c" : "x" } `,
	`{"a":1,"a":2,"b":{"a":3,"a":{"k":1}}}`,
	`{"k":"\u0000\u001f\b\f\n\r\t\"\\\/<>&\u2028\u2029\u00e9\ud83d\ude00\ud800"}`,
	"{\"k\":\"caf\xc3\xa9 \xff\xfe invalid \xe2\x80\xa8 ls\x7f\"}",
	`{"\u00e9":1,"e":2,"é":3,"E":4,"":5}`,
	`{"meta":{"n":1,"segment":"retail"},"payment":{"amount":"10","fee_order":["b","a"]}}`,
	`[1,[2,[3,[4,{}]]],""]`,
	// invalid: both must fail
	``, `{`, `{"a":}`, `{} x`, `{"a":1}}`, `[1,]`, `"\x01"`, `{"a":01}`, `nul`,
}

func TestCanonicalJSONMatchesDefinition(t *testing.T) {
	check := func(in string) {
		t.Helper()
		want, werr := canonicalJSONSlow([]byte(in))
		got, gerr := canonicalJSON([]byte(in))
		if (werr != nil) != (gerr != nil) || (werr != nil && werr.Error() != gerr.Error()) {
			t.Fatalf("%q: error %v, want %v", in, gerr, werr)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("%q:\n got %q\nwant %q", in, got, want)
		}
	}
	for _, in := range canonicalCorpus {
		check(in)
	}
	// Every byte and some runes in strings and keys.
	for b := range 256 {
		s := string([]byte{byte(b)})
		for _, r := range []string{s, "a" + s + "z", s + "\u2028"} {
			k, _ := json.Marshal(r)
			check(fmt.Sprintf(`{%s:%s,"x":[%s]}`, k, k, k))
			check(fmt.Sprintf(`{"k":"%s"}`, r)) // raw: valid or not
		}
	}
	// Random documents.
	rng := rand.New(rand.NewPCG(1, 2))
	for range 5000 {
		check(randomJSON(rng, 3))
	}
}

func randomJSON(rng *rand.Rand, depth int) string {
	atoms := []string{`null`, `true`, `false`, `0`, `-1.50`, `2e2`, `"x"`, `"\u00e9\n"`, `"<&>"`, `"\ud83d\ude00"`, "\"\xff\"", `""`}
	if depth == 0 || rng.IntN(3) == 0 {
		return atoms[rng.IntN(len(atoms))]
	}
	ws := func() string { return []string{"", " ", "\n\t"}[rng.IntN(3)] }
	n := rng.IntN(4)
	parts := make([]string, n)
	if rng.IntN(2) == 0 {
		for i := range parts {
			parts[i] = ws() + randomJSON(rng, depth-1) + ws()
		}
		return "[" + strings.Join(parts, ",") + "]"
	}
	keys := []string{`"a"`, `"b"`, `"B"`, `"é"`, `"\u00e9"`, `"a\u0000"`, `""`, `"zz"`}
	for i := range parts {
		parts[i] = ws() + keys[rng.IntN(len(keys))] + ws() + ":" + ws() + randomJSON(rng, depth-1)
	}
	return "{" + strings.Join(parts, ",") + "}"
}

func FuzzCanonicalJSON(f *testing.F) {
	for _, in := range canonicalCorpus {
		f.Add([]byte(in))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		want, werr := canonicalJSONSlow(in)
		got, gerr := canonicalJSON(in)
		if (werr != nil) != (gerr != nil) {
			t.Fatalf("%q: error %v, want %v", in, gerr, werr)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("%q:\n got %q\nwant %q", in, got, want)
		}
	})
}

// BenchmarkCanonicalJSON compares the one-pass canonical encoding of a
// ledger_entry.posted payload with its definition (decode into values,
// re-encode), in the same run.
func BenchmarkCanonicalJSON(b *testing.B) {
	for _, c := range []struct {
		name string
		f    func([]byte) ([]byte, error)
	}{{"definition", canonicalJSONSlow}, {"one_pass", canonicalJSON}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.f(entryPostedData); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// chainHashDefinition is chainHash as first written, field by field.
func chainHashDefinition(prev []byte, e *domain.Event, cd, cm []byte) []byte {
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

func TestChainHashMatchesDefinition(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	var prev []byte
	for i := range 2000 {
		e := &domain.Event{ID: fmt.Sprintf("evt_%d", rng.Int64()), TenantID: "ten_" + strings.Repeat("x", rng.IntN(40)), StreamType: "account",
			StreamID: fmt.Sprintf("acct_%d", i), StreamVersion: rng.Int64N(1 << 40), Type: "ledger_entry.posted", SchemaVersion: 1 + rng.IntN(3),
			RecordedAt: time.Unix(rng.Int64N(1<<34), rng.Int64N(1e9)).In(time.FixedZone("x", 3600))}
		cd, cm := []byte(randomJSON(rng, 2)), []byte(strings.Repeat("m", rng.IntN(300)))
		want := chainHashDefinition(prev, e, cd, cm)
		if got := chainHash(prev, e, cd, cm); !bytes.Equal(got, want) {
			t.Fatalf("event %d: %x, want %x", i, got, want)
		}
		prev = want
	}
}
