// Package sqlcodec owns the column encodings the SQL backends share (SQLite
// and PostgreSQL): keeping them in one place, and only here, is what keeps
// the two schemas interchangeable and a record read back the same from
// either.
//
//   - times are BIGINT unix microseconds UTC, with 0 for the zero time (so
//     a time is stored to the microsecond, and the Unix epoch itself reads
//     back as the zero time);
//   - string lists are JSON arrays in TEXT, with nil and empty both "[]";
//   - optional byte strings are NULL when nil;
//   - booleans are INTEGER 0/1;
//   - durations are BIGINT nanoseconds.
package sqlcodec
