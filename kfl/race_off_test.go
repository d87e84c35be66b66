//go:build !race

package kfl

const raceEnabled = false
