// SHA-256 (FIPS 180-4), for the data checksum a training run logs and a report shows.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace xtgrad {

// An incremental SHA-256: update() with any number of byte runs, then digest() once.
class Sha256 {
public:
    Sha256();
    // Appends n bytes to the message.
    void update(const void* data, std::size_t n);
    // The 32-byte hash of everything appended; the object is spent afterwards (update() throws Error).
    std::array<std::uint8_t, 32> digest();
    // digest() as 64 lowercase hex digits.
    std::string hex();

private:
    void block(const std::uint8_t* p);
    std::array<std::uint32_t, 8> h_;
    std::array<std::uint8_t, 64> buf_{};
    std::size_t used_ = 0;      // bytes waiting in buf_
    std::uint64_t length_ = 0;  // message length in bytes
    bool done_ = false;
};

// The SHA-256 of a byte string, as 64 lowercase hex digits.
std::string sha256_hex(const std::string& bytes);

// "sha256:<hex>" of the files' bytes one after another (what `cat FILE... | sha256sum` prints). Throws FileError
// naming a file that cannot be read.
std::string sha256_files(const std::vector<std::string>& paths);

}  // namespace xtgrad
