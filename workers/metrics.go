package workers

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

var (
	relayPublished = promauto.NewCounter(prometheus.CounterOpts{
		Name: "arrears_relay_published_events_total", Help: "Events the relay published to JetStream and got acknowledged.",
	})
	relaySequence = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "arrears_relay_sequence", Help: "The relay's checkpoint: JetStream sequence of the last acknowledged event.",
	})
	relayLeader = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "arrears_relay_leader", Help: "1 while this process holds the relay leadership.",
	})
	relayRepairs = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "arrears_relay_repairs_total", Help: "Stream/checkpoint mismatches repaired: lost_tail (JetStream lost acknowledged messages, republished) and adopted (acknowledged before a crash, checkpoint advanced).",
	}, []string{"kind"})
	relayLag = promauto.NewHistogram(prometheus.HistogramOpts{
		Name: "arrears_relay_lag_seconds", Help: "Time from an event's recording to its acknowledgement by JetStream.",
		Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
	})
	projectionEvents = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "arrears_projection_events_total", Help: "Events applied by a projection.",
	}, []string{"projection"})
	projectionSequence = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Name: "arrears_projection_sequence", Help: "A projection's checkpoint (relay sequence of its last applied event).",
	}, []string{"projection"})
	projectionBackfills = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "arrears_projection_backfills_total", Help: "Times a projection read missing events from the event store instead of JetStream.",
	}, []string{"projection"})
	projectionLag = promauto.NewHistogramVec(prometheus.HistogramOpts{
		Name: "arrears_projection_lag_seconds", Help: "Time from an event's recording to its projection commit.",
		Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
	}, []string{"projection"})
)
