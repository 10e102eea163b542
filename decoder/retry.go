package decoder

import (
	"context"
	"errors"
	"log/slog"
	"time"
)

// retryLoop runs session until ctx ends, waiting between sessions with a
// backoff that doubles from min to max and starts over after a session
// that made progress. Each failure is recorded with record and logged, at
// debug level when quiet (which may be nil) says it is expected. It
// returns nil when ctx ends.
func retryLoop(ctx context.Context, log *slog.Logger, what string, quiet func(error) bool, minWait, maxWait time.Duration,
	session func() (progressed bool, err error), record func(error)) error {
	backoff := minWait
	for {
		progressed, err := session()
		if ctx.Err() != nil {
			return nil
		}
		if err == nil {
			err = errors.New("decoder: " + what + " ended")
		}
		if progressed {
			backoff = minWait
		}
		record(err)
		if quiet != nil && quiet(err) {
			log.Debug(what+" ended", "err", err, "retry_in", backoff)
		} else {
			log.Warn(what+" ended", "err", err, "retry_in", backoff)
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		backoff = min(backoff*2, maxWait)
	}
}

// retryBounds fills in the default reconnect backoff (200 ms doubling to
// 10 s) and keeps max ≥ min.
func retryBounds(minWait, maxWait *time.Duration) {
	if *minWait <= 0 {
		*minWait = 200 * time.Millisecond
	}
	if *maxWait <= 0 {
		*maxWait = 10 * time.Second
	}
	if *maxWait < *minWait {
		*maxWait = *minWait
	}
}

// sourceLogger returns l (or a discarding logger) with the source's
// attributes.
func sourceLogger(l *slog.Logger, attrs ...any) *slog.Logger {
	if l == nil {
		l = slog.New(slog.DiscardHandler)
	}
	return l.With(attrs...)
}

// recordError stores err as the source's last error.
func recordError(update func(func(*Status))) func(error) {
	return func(err error) {
		update(func(st *Status) {
			st.LastError = err.Error()
			st.LastErrorTime = time.Now()
		})
	}
}
