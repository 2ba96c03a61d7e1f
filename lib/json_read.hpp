// Reading JSON that comes from a file: nlohmann-json's strict RFC 8259 parser, with bounds on nesting depth and on
// the number of values, and duplicate keys refused (nlohmann would keep the last one silently). Internal to the
// build (not installed): it includes nlohmann/json.hpp, which the installed headers stay free of.
#pragma once

#include <cstddef>
#include <string>

#include <nlohmann/json.hpp>

namespace xtgrad {

// Bounds a document must stay within; chosen per use so that a real file never reaches them.
struct JsonLimits {
    std::size_t depth = 16;         // arrays and objects nested at most this deep (a scalar document: 0)
    std::size_t values = 1u << 20;  // scalars, arrays and objects in all (object keys not counted)
};

// Parses text as one JSON document. Throws FileError "<what>: ..." naming the byte offset on malformed JSON
// (invalid UTF-8 included), and naming the bound or the key on a document nested too deep, with too many values,
// or with a key repeated in one object. Time and memory are linear in the text; parsing stops at the first
// value past a bound.
nlohmann::json parse_json(const std::string& text, const JsonLimits& limits, const std::string& what);

// `s` as a JSON string literal; throws FileError "<what> is not valid UTF-8" when it cannot be one.
std::string json_quote(const std::string& s, const std::string& what);

}  // namespace xtgrad
