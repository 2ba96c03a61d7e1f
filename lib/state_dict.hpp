// StateDict: named tensors plus string metadata, what checkpoints and weight files hold.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <xtgrad/lib/array.hpp>

namespace xtgrad {

// Named float32 tensors (each with its declared shape, of any rank, stored as a 2-D Array) and string metadata.
struct StateDict {
    // One tensor: its declared shape and its values as (rows x last dim); rank 0 and 1 are (1 x n).
    struct Entry {
        std::vector<std::size_t> shape;
        Array value;
    };
    std::map<std::string, Entry> tensors;
    std::map<std::string, std::string> metadata;

    // Stores a copy of value under name with the declared shape (empty: the Array's 2-D shape).
    void put(const std::string& name, const Array& value, std::vector<std::size_t> shape = {});
    // The tensor called name; throws FileError naming it (and `context`, e.g. the file) when absent.
    const Entry& get(const std::string& name, const std::string& context = "state") const;
    // Copies the tensor called name into dst, which must already have its shape; throws FileError naming the
    // tensor and both shapes when they differ.
    void load_into(const std::string& name, Array& dst, const std::string& context = "state") const;

    // Metadata writers: exact round trips of integers and doubles through text (read them with MetaReader).
    void put_int(const std::string& key, std::int64_t v);
    void put_double(const std::string& key, double v);
    bool has_meta(const std::string& key) const { return metadata.count(key) != 0; }
};

// Reads metadata that came from a file with every value checked: the one way xtgrad reads what a file claims
// (model settings, optimiser and schedule state, progress). Each reader parses strictly (no sign, space or
// hex where a whole number is due; no NaN or infinity where a real is) and bounds the value; a missing or bad
// value throws FileError "<context>: metadata '<key>' ..." saying what is wrong.
class MetaReader {
public:
    MetaReader(const StateDict& sd, std::string context) : sd_(sd), ctx_(std::move(context)) {}
    // Whether the key is present.
    bool has(const std::string& key) const { return sd_.has_meta(key); }
    // A string of at most max_length bytes.
    std::string text(const std::string& key, std::size_t max_length = 1u << 20) const;
    // A whole number in [lo, hi], written in decimal digits.
    std::uint64_t count(const std::string& key, std::uint64_t lo, std::uint64_t hi) const;
    // A finite number in [lo, hi], written as JSON writes numbers.
    double real(const std::string& key, double lo, double hi) const;
    // 0 or 1.
    bool flag(const std::string& key) const;
    // A comma-separated list of whole numbers in [lo, hi], at most max_items (an empty text: none).
    std::vector<std::uint64_t> list(const std::string& key, std::uint64_t lo, std::uint64_t hi,
                                    std::size_t max_items) const;
    // A comma-separated list of finite numbers in [lo, hi], at most max_items (an empty text: none).
    std::vector<double> reals(const std::string& key, double lo, double hi, std::size_t max_items) const;
    // A JSON array of at most max_items strings.
    std::vector<std::string> strings(const std::string& key, std::size_t max_items) const;
    // A JSON object of at most max_items string values (each key once).
    std::map<std::string, std::string> string_map(const std::string& key, std::size_t max_items) const;
    // Throws FileError "<context>: metadata '<key>' <what>".
    [[noreturn]] void fail(const std::string& key, const std::string& what) const;
    // What the messages name (the file).
    const std::string& context() const { return ctx_; }

private:
    const StateDict& sd_;
    std::string ctx_;
};

// "[a, b, c]" for messages.
std::string shape_str(const std::vector<std::size_t>& s);

}  // namespace xtgrad
