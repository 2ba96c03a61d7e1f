#include <xtgrad/apps/lm/metrics.hpp>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <sstream>

#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include <xtgrad/lib/error.hpp>
#include <xtgrad/lib/safetensors.hpp>

namespace xtgrad {

MetricsWriter::MetricsWriter(const std::string& path) : path_(path) {
    if (path.empty()) return;
    f_ = std::fopen(path.c_str(), "a");
    if (!f_) throw FileError(fmt::format("{}: cannot open the metrics log for appending: {}", path, std::strerror(errno)));
}

MetricsWriter::~MetricsWriter() {
    if (f_) std::fclose(f_);
}

void MetricsWriter::write(const std::string& event, const std::vector<std::pair<std::string, MetricValue>>& fields) {
    if (!f_) return;
    nlohmann::ordered_json j;
    j["event"] = event;
    for (const auto& [key, value] : fields) {
        if (const double* d = std::get_if<double>(&value)) {
            if (std::isfinite(*d)) j[key] = *d;
            else j[key] = nullptr;
        } else if (const std::int64_t* i = std::get_if<std::int64_t>(&value)) {
            j[key] = *i;
        } else {
            j[key] = std::get<std::string>(value);
        }
    }
    const std::string line = j.dump() + "\n";
    if (std::fputs(line.c_str(), f_) < 0 || std::fflush(f_) != 0)
        throw FileError(fmt::format("{}: cannot append to the metrics log: {}", path_, std::strerror(errno)));
}

std::vector<std::string> read_metrics_lines(const std::string& path) {
    std::istringstream in(read_file(path));
    std::vector<std::string> out;
    std::string line;
    for (std::size_t n = 1; std::getline(in, line); ++n) {
        if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
        const nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
        if (!j.is_object()) throw FileError(fmt::format("{}:{}: not a JSON object", path, n));
        out.push_back(line);
    }
    return out;
}

}  // namespace xtgrad
