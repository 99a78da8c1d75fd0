//! The wait-for graph of blocked goroutines.
