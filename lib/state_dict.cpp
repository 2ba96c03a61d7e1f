#include <xtgrad/lib/state_dict.hpp>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>

#include <fmt/core.h>
#include <fmt/format.h>

#include <xtgrad/lib/error.hpp>
#include <xtgrad/lib/json_read.hpp>

namespace xtgrad {

std::string shape_str(const std::vector<std::size_t>& s) { return fmt::format("[{}]", fmt::join(s, ", ")); }

void StateDict::put(const std::string& name, const Array& value, std::vector<std::size_t> shape) {
    if (shape.empty()) shape = {value.shape()[0], value.shape()[1]};
    tensors[name] = Entry{std::move(shape), value};
}

const StateDict::Entry& StateDict::get(const std::string& name, const std::string& context) const {
    auto it = tensors.find(name);
    if (it == tensors.end()) throw FileError(fmt::format("{}: no tensor named '{}'", context, name));
    return it->second;
}

void StateDict::load_into(const std::string& name, Array& dst, const std::string& context) const {
    const Entry& e = get(name, context);
    if (e.value.shape() != dst.shape()) {
        throw FileError(fmt::format("{}: tensor '{}' has shape {}, expected {}", context, name, shape_str(e.shape),
                                    shape_str(dst)));
    }
    std::copy(e.value.begin(), e.value.end(), dst.begin());
}

void StateDict::put_int(const std::string& key, std::int64_t v) { metadata[key] = fmt::format("{}", v); }

void StateDict::put_double(const std::string& key, double v) { metadata[key] = fmt::format("{:.17g}", v); }

// ---- MetaReader

void MetaReader::fail(const std::string& key, const std::string& what) const {
    throw FileError(fmt::format("{}: metadata '{}' {}", ctx_, key, what));
}

std::string MetaReader::text(const std::string& key, std::size_t max_length) const {
    const auto it = sd_.metadata.find(key);
    if (it == sd_.metadata.end()) fail(key, "is missing");
    const std::string& s = it->second;
    if (s.size() > max_length) fail(key, fmt::format("is {} bytes long, more than the {} allowed", s.size(), max_length));
    return s;
}

namespace {

// Strict decimal: digits only (no sign, no spaces), no overflow.
bool parse_u64(const std::string& s, std::uint64_t& v) {
    if (s.empty() || s.size() > 20 || !std::all_of(s.begin(), s.end(), [](char ch) { return ch >= '0' && ch <= '9'; }))
        return false;
    errno = 0;
    char* end = nullptr;
    v = std::strtoull(s.c_str(), &end, 10);
    return errno != ERANGE && *end == '\0';
}

// A finite number in the characters JSON numbers use (what put_double writes); strtod alone would also take
// spaces, hex, "nan" and "inf".
bool parse_real(const std::string& s, double& v) {
    if (s.empty() || s.size() > 64 || !(s[0] == '-' || (s[0] >= '0' && s[0] <= '9')) ||
        !std::all_of(s.begin(), s.end(), [](char ch) { return (ch >= '0' && ch <= '9') || std::strchr("+-.eE", ch); }))
        return false;
    char* end = nullptr;
    v = std::strtod(s.c_str(), &end);
    return *end == '\0' && std::isfinite(v);
}

// Splits "a,b,c" (an empty text: no items), at most max_items; calls item(index, text) for each.
template <class F>
void split_list(const MetaReader& m, const std::string& key, const std::string& s, std::size_t max_items, F&& item) {
    if (s.empty()) return;
    std::size_t pos = 0, n = 0;
    while (true) {
        const std::size_t next = std::min(s.find(',', pos), s.size());
        if (n == max_items) m.fail(key, fmt::format("has more than {} items", max_items));
        item(n++, s.substr(pos, next - pos));
        if (next == s.size()) break;
        pos = next + 1;
    }
}

}  // namespace

std::uint64_t MetaReader::count(const std::string& key, std::uint64_t lo, std::uint64_t hi) const {
    const std::string s = text(key, 32);
    std::uint64_t v = 0;
    if (!parse_u64(s, v)) fail(key, fmt::format("= '{}' is not a whole number", s));
    if (v < lo || v > hi) fail(key, fmt::format("= {} is outside [{}, {}]", v, lo, hi));
    return v;
}

double MetaReader::real(const std::string& key, double lo, double hi) const {
    const std::string s = text(key, 64);
    double v = 0.0;
    if (!parse_real(s, v)) fail(key, fmt::format("= '{}' is not a finite number", s));
    if (v < lo || v > hi) fail(key, fmt::format("= {} is outside [{}, {}]", v, lo, hi));
    return v;
}

bool MetaReader::flag(const std::string& key) const { return count(key, 0, 1) == 1; }

std::vector<std::uint64_t> MetaReader::list(const std::string& key, std::uint64_t lo, std::uint64_t hi,
                                            std::size_t max_items) const {
    std::vector<std::uint64_t> out;
    split_list(*this, key, text(key, max_items * 21), max_items, [&](std::size_t i, const std::string& item) {
        std::uint64_t v = 0;
        if (!parse_u64(item, v)) fail(key, fmt::format("item {} ('{}') is not a whole number", i, item));
        if (v < lo || v > hi) fail(key, fmt::format("item {} = {} is outside [{}, {}]", i, v, lo, hi));
        out.push_back(v);
    });
    return out;
}

std::vector<double> MetaReader::reals(const std::string& key, double lo, double hi, std::size_t max_items) const {
    std::vector<double> out;
    split_list(*this, key, text(key, max_items * 65), max_items, [&](std::size_t i, const std::string& item) {
        double v = 0.0;
        if (!parse_real(item, v)) fail(key, fmt::format("item {} ('{}') is not a finite number", i, item));
        if (v < lo || v > hi) fail(key, fmt::format("item {} = {} is outside [{}, {}]", i, v, lo, hi));
        out.push_back(v);
    });
    return out;
}

std::vector<std::string> MetaReader::strings(const std::string& key, std::size_t max_items) const {
    const nlohmann::json j = parse_json(text(key, 1u << 30), {1, max_items + 1}, fmt::format("{}: metadata '{}'", ctx_, key));
    if (!j.is_array()) fail(key, "is not a JSON array of strings");
    std::vector<std::string> out;
    out.reserve(j.size());
    for (const auto& t : j) {
        if (!t.is_string()) fail(key, fmt::format("item {} is not a string", out.size()));
        out.push_back(t.get<std::string>());
    }
    return out;
}

std::map<std::string, std::string> MetaReader::string_map(const std::string& key, std::size_t max_items) const {
    const nlohmann::json j = parse_json(text(key, 1u << 20), {1, max_items + 1}, fmt::format("{}: metadata '{}'", ctx_, key));
    if (!j.is_object()) fail(key, "is not a JSON object of strings");
    std::map<std::string, std::string> out;
    for (const auto& kv : j.items()) {
        if (!kv.value().is_string()) fail(key, fmt::format("'{}' is not a string", kv.key()));
        out[kv.key()] = kv.value().get<std::string>();
    }
    return out;
}

}  // namespace xtgrad
