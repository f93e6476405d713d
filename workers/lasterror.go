package workers

import "sync/atomic"

// lastError holds the error that last stopped a worker loop from doing its
// job, nil while it works normally. Safe for concurrent use.
type lastError struct{ p atomic.Pointer[error] }

func (l *lastError) Load() error {
	if p := l.p.Load(); p != nil {
		return *p
	}
	return nil
}

func (l *lastError) Set(err error) {
	if err == nil {
		l.p.Store(nil)
		return
	}
	l.p.Store(&err)
}
