//go:build !linux

package buffer

// trimResident bounds the table pages kept in memory where the kernel lets
// a process page out a mapped file (see resident_linux.go); elsewhere badger's
// tables stay resident until the operating system reclaims them.
func (q *Queue) trimResident() {}
