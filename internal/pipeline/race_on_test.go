//go:build race

package pipeline

// raceEnabled: the race detector slows the in-process simulators several times.
const raceEnabled = true
