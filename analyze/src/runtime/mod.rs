//! The Go runtime model: goroutines, Ms, Ps, stacks.
