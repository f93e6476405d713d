package workers_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/arrears/arrears/domain"
	"github.com/arrears/arrears/eventstore"
	"github.com/arrears/arrears/workers"
)

const benchEvents = 20_000

// BenchmarkRelay measures events/s from the event store to acknowledged
// JetStream messages (read in the gap-free order, encode, async publish with
// expected-sequence checks, checkpoint), from a standing start.
func BenchmarkRelay(b *testing.B) {
	for b.Loop() {
		b.StopTimer()
		e := newEnv(b, "")
		seed(b, e.store, benchEvents)
		r, err := workers.NewRelay(e.store, e.nc, workers.RelayConfig{NATS: e.topo, PollInterval: time.Millisecond}, logger)
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		b.StartTimer()
		go r.Run(ctx)
		for r.Sequence() < benchEvents {
			time.Sleep(time.Millisecond)
		}
		b.StopTimer()
		cancel()
		b.StartTimer()
	}
	b.ReportMetric(float64(benchEvents*b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkBaselineJetStreamPublish is BenchmarkRelay's baseline in the same
// run: the same number of messages of the same size async-published straight
// to a JetStream stream, no PostgreSQL.
func BenchmarkBaselineJetStreamPublish(b *testing.B) {
	nc, err := nats.Connect(testNATS.URL)
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4000))
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	ce := domain.Event{ID: "evt_01JDQ7X0000000000000000000", TenantID: "ten_bench", StreamType: "account", StreamID: "acct_01JDQ7X0000000000000000000",
		StreamVersion: 1, Type: "ledger_entry.posted", Position: 1, Data: json.RawMessage(`{"amount":"125.50","currency":"EUR"}`), RecordedAt: time.Now()}.ToCloudEvent()
	body, _ := json.Marshal(ce)
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		name := fmt.Sprintf("BENCH_%d_%d", time.Now().UnixNano(), i)
		if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: name, Subjects: []string{name + ".>"}, Storage: jetstream.FileStorage}); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		for n := range benchEvents {
			if _, err := js.PublishAsync(name+".ten_bench.account.ledger_entry.posted", body, jetstream.WithMsgID(fmt.Sprint(n))); err != nil {
				b.Fatal(err)
			}
		}
		<-js.PublishAsyncComplete()
		b.StopTimer()
		_ = js.DeleteStream(ctx, name)
		b.StartTimer()
	}
	b.ReportMetric(float64(benchEvents*b.N)/b.Elapsed().Seconds(), "events/s")
}

func seed(b *testing.B, store *eventstore.Store, n int) {
	ids := domain.NewIDGenerator(nil)
	for done := 0; done < n; done += 1000 {
		appends := make([]eventstore.StreamAppend, 1000)
		for i := range appends {
			appends[i] = eventstore.StreamAppend{TenantID: "ten_bench", StreamType: "account", StreamID: ids.New("acct", time.Now()),
				Events: []domain.NewEvent{{Type: "ledger_entry.posted", Data: json.RawMessage(`{"amount":"125.50","currency":"EUR"}`)}}}
		}
		if _, err := store.Append(context.Background(), domain.Metadata{}, appends...); err != nil {
			b.Fatal(err)
		}
	}
}
