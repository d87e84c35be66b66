//go:build race

package kfl

// The race detector makes sync.Pool drop objects, so regexp allocates.
const raceEnabled = true
