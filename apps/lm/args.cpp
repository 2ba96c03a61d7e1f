#include <xtgrad/apps/lm/args.hpp>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>

#include <fmt/core.h>

#include <xtgrad/lib/error.hpp>

namespace xtgrad {

Args::Args(int argc, char** argv, int first, const std::set<std::string>& switches) : switches_(switches) {
    for (int i = first; i < argc; ++i) {
        std::string a = argv[i];
        if (a.rfind("--", 0) != 0 || a.size() == 2)
            throw ConfigError(fmt::format("unexpected argument '{}' (flags look like --name value)", a));
        std::string name = a.substr(2), value;
        const std::size_t eq = name.find('=');
        std::replace(name.begin(), name.begin() + static_cast<long>(eq == std::string::npos ? name.size() : eq), '_', '-');
        if (eq != std::string::npos) {
            value = name.substr(eq + 1);
            name = name.substr(0, eq);
        } else if (switches_.count(name)) {
            value = "1";
        } else {
            if (i + 1 >= argc) throw ConfigError(fmt::format("--{} needs a value", name));
            value = argv[++i];
        }
        if (values_.count(name)) throw ConfigError(fmt::format("--{} given twice", name));
        values_[name] = value;
    }
}

std::string Args::str(const std::string& name, const std::string& def) {
    used_.insert(name);
    auto it = values_.find(name);
    return it == values_.end() ? def : it->second;
}

long Args::integer(const std::string& name, long def, long min, long max) {
    used_.insert(name);
    auto it = values_.find(name);
    if (it == values_.end()) return def;
    const std::string& s = it->second;
    char* end = nullptr;
    errno = 0;
    const long v = std::strtol(s.c_str(), &end, 10);
    if (s.empty() || *end != '\0' || errno == ERANGE)
        throw ConfigError(fmt::format("--{}: '{}' is not an integer", name, s));
    if (v < min || v > max) throw ConfigError(fmt::format("--{} must be in [{}, {}], got {}", name, min, max, v));
    return v;
}

double Args::real(const std::string& name, double def, double min, double max, bool min_open) {
    used_.insert(name);
    auto it = values_.find(name);
    if (it == values_.end()) return def;
    const std::string& s = it->second;
    char* end = nullptr;
    const double v = std::strtod(s.c_str(), &end);
    if (s.empty() || *end != '\0' || !std::isfinite(v)) throw ConfigError(fmt::format("--{}: '{}' is not a number", name, s));
    if (v < min || v > max || (min_open && v == min))
        throw ConfigError(fmt::format("--{} must be in {}{}, {}], got {}", name, min_open ? "(" : "[", min, max, v));
    return v;
}

bool Args::flag(const std::string& name) {
    used_.insert(name);
    auto it = values_.find(name);
    if (it == values_.end()) return false;
    if (it->second == "1" || it->second == "true") return true;
    if (it->second == "0" || it->second == "false") return false;
    throw ConfigError(fmt::format("--{} takes no value (or =true / =false), got '{}'", name, it->second));
}

void Args::finish() const {
    for (const auto& kv : values_)
        if (!used_.count(kv.first)) throw ConfigError(fmt::format("unknown flag --{} for this command (see --help)", kv.first));
}

}  // namespace xtgrad
