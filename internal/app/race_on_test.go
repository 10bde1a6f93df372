//go:build race

package app

// raceEnabled: the race detector slows the in-process simulators ~5x.
const raceEnabled = true
