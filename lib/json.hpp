// A small JSON reader and string escaper, enough for safetensors headers and metadata; strict and bounded.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace xtgrad::json {

// A parsed JSON value.
struct Value {
    enum class Kind { null, boolean, number, string, array, object };
    Kind kind = Kind::null;
    bool boolean = false;
    double number = 0.0;
    bool integral = false;   // the number was written without fraction or exponent
    std::uint64_t uint = 0;  // its value when integral and non-negative (exact up to 2^64-1)
    bool negative = false;
    std::string string;
    std::vector<Value> array;
    std::vector<std::pair<std::string, Value>> object;  // in file order; duplicate keys are rejected

    // The member called key, or null.
    const Value* find(const std::string& key) const;
};

// Parses text as one JSON value; throws FileError with `context` and the byte offset on malformed input,
// nesting deeper than 64, or trailing garbage.
Value parse(const std::string& text, const std::string& context);

// "text" with JSON escapes.
std::string quote(const std::string& s);

// Encodes a list of strings as a JSON array, and decodes it back (throws FileError on anything else).
std::string encode_strings(const std::vector<std::string>& items);
std::vector<std::string> decode_strings(const std::string& text, const std::string& context);

}  // namespace xtgrad::json
