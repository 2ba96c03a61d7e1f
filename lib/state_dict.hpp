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

    // Metadata helpers: exact round trips of integers and doubles through text.
    void put_int(const std::string& key, std::int64_t v);
    void put_double(const std::string& key, double v);
    std::int64_t get_int(const std::string& key, const std::string& context = "state") const;
    double get_double(const std::string& key, const std::string& context = "state") const;
    const std::string& get_string(const std::string& key, const std::string& context = "state") const;
    bool has_meta(const std::string& key) const { return metadata.count(key) != 0; }
};

// "[a, b, c]" for messages.
std::string shape_str(const std::vector<std::size_t>& s);

}  // namespace xtgrad
