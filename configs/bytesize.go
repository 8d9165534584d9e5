package configs

// ByteSize is a size in bytes, written in YAML as a number of bytes or
// with a unit: 512KiB, 10MiB, 1GiB (powers of 1024) or 10KB, 10MB, 1GB
// (powers of 1000).
type ByteSize int64
