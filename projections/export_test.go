package projections

import "testing"

// SetShadowBatch makes shadows fold n events per transaction during t.
func SetShadowBatch(t testing.TB, n int) {
	old := shadowBatch
	shadowBatch = n
	t.Cleanup(func() { shadowBatch = old })
}

// SetRebuildPage makes Rebuild fold n events per Apply during t.
func SetRebuildPage(t testing.TB, n int) {
	old := rebuildPage
	rebuildPage = n
	t.Cleanup(func() { rebuildPage = old })
}
