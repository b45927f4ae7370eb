//! Following a growing log (placeholder; filled in below).
