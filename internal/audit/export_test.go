package audit

// SetSegmentSize sets the size past which the journal starts a new
// segment, for tests of rotation; it returns the function that restores it.
func SetSegmentSize(n int64) (restore func()) {
	old := segmentSize
	segmentSize = n
	return func() { segmentSize = old }
}
