//go:build race

package session

// raceEnabled: the race detector slows CPU-bound transfers 5-10x, so
// bulk tests move less data under it (interleavings, not volume, are what
// it checks).
const raceEnabled = true
