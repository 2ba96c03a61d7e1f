#include <xtgrad/lib/state_dict.hpp>

#include <cerrno>
#include <cstdlib>

#include <fmt/core.h>
#include <fmt/format.h>

#include <xtgrad/lib/error.hpp>

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

const std::string& StateDict::get_string(const std::string& key, const std::string& context) const {
    auto it = metadata.find(key);
    if (it == metadata.end()) throw FileError(fmt::format("{}: missing metadata '{}'", context, key));
    return it->second;
}

std::int64_t StateDict::get_int(const std::string& key, const std::string& context) const {
    const std::string& s = get_string(key, context);
    errno = 0;
    char* end = nullptr;
    const long long v = std::strtoll(s.c_str(), &end, 10);
    if (s.empty() || *end != '\0' || errno == ERANGE)
        throw FileError(fmt::format("{}: metadata '{}' = '{}' is not an integer", context, key, s));
    return v;
}

double StateDict::get_double(const std::string& key, const std::string& context) const {
    const std::string& s = get_string(key, context);
    char* end = nullptr;
    const double v = std::strtod(s.c_str(), &end);
    if (s.empty() || *end != '\0') throw FileError(fmt::format("{}: metadata '{}' = '{}' is not a number", context, key, s));
    return v;
}

}  // namespace xtgrad
