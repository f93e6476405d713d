package eventstore

import (
	"context"
	"fmt"

	"github.com/arrears/arrears/domain"
)

// Load folds a stream's events into agg and returns the stream's version
// (0 for a stream that does not exist yet), to append at.
func (s *Store) Load(ctx context.Context, tenantID, streamID string, agg domain.Aggregate) (int64, error) {
	evs, err := s.ReadStream(ctx, tenantID, streamID, 0)
	if err != nil {
		return 0, err
	}
	for _, e := range evs {
		if err := agg.Apply(e.Type, e.Data); err != nil {
			return 0, fmt.Errorf("eventstore: load %s: %w", streamID, err)
		}
	}
	if len(evs) == 0 {
		return 0, nil
	}
	return evs[len(evs)-1].StreamVersion, nil
}
