// safetensors files (8-byte header length, JSON header, raw little-endian tensors), read and written here,
// with atomic writes and full validation on read.
#pragma once

#include <string>

#include <xtgrad/lib/state_dict.hpp>

namespace xtgrad {

// The bytes of a safetensors file holding sd (F32 tensors, sorted by name, metadata in "__metadata__").
std::string encode_safetensors(const StateDict& sd);

// Parses the bytes of a safetensors file. Validates the header length against the size, the JSON, every
// dtype (F32 only), shape, and offset (inside the buffer, matching the shape, no overlap, no holes); throws
// FileError naming `name`, the tensor and what is wrong. Never reads out of bounds.
StateDict decode_safetensors(const std::string& bytes, const std::string& name);

// Writes sd to path atomically (see write_file_atomic).
void save_safetensors(const std::string& path, const StateDict& sd);

// Reads and validates a safetensors file (see decode_safetensors); throws FileError naming the path.
StateDict load_safetensors(const std::string& path);

// Writes bytes to path atomically: a new temporary file in the same folder (unnamed with O_TMPFILE where the file
// system has it, else created exclusively under an unpredictable name, never following a planted file or
// symlink; XTGRAD_NO_TMPFILE=1 forces this path, for tests), fsync'ed, named, renamed over path, then the folder
// fsync'ed. A crash at any moment leaves either the old file or the new one, never a mix. Temporaries a killed
// process left (<name>.tmp-<pid>-<hex>, or <name>.tmp.<pid> of earlier versions, whose pid no longer runs) are
// removed by the next write to the same path. Throws FileError with the system's reason.
void write_file_atomic(const std::string& path, const std::string& bytes);

// Throws FileError with the system's reason when a file cannot be created in path's folder (missing,
// read-only, not permitted), without leaving anything there: what write_file_atomic will need.
void check_can_write(const std::string& path);

// The whole content of a file; throws FileError naming the path and the system's reason.
std::string read_file(const std::string& path);

}  // namespace xtgrad
