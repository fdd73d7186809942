package remote

import "time"

// SetRefuseWait changes how long strangers' streams are held for the
// test's duration.
func SetRefuseWait(d time.Duration) (restore func()) {
	old := refuseWait
	refuseWait = d
	return func() { refuseWait = old }
}

// MaxRefusing is maxRefusing for tests.
const MaxRefusing = maxRefusing

// SetDrainWait changes drainWait for the test's duration.
func SetDrainWait(d time.Duration) (restore func()) {
	old := drainWait
	drainWait = d
	return func() { drainWait = old }
}
