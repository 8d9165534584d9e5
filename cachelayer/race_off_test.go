//go:build !race

package cachelayer

const raceEnabled = false
