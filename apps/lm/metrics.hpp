// The metrics log of a run: one JSON object per line, written with a JSON library and flushed line by line.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <utility>
#include <variant>
#include <vector>

namespace xtgrad {

// A value of a metrics record: a number (non-finite ones are written as null), a whole number or a string.
using MetricValue = std::variant<double, std::int64_t, std::string>;

// Appends one JSON object per line to a file; each line is flushed, so a crash loses nothing written.
class MetricsWriter {
public:
    // Opens path for appending (creating it); an empty path discards every record. Throws FileError naming the
    // path and the system's reason.
    explicit MetricsWriter(const std::string& path);
    ~MetricsWriter();
    MetricsWriter(const MetricsWriter&) = delete;
    MetricsWriter& operator=(const MetricsWriter&) = delete;

    // Writes {"event": event, field: value, ...} as one line, fields in order.
    void write(const std::string& event, const std::vector<std::pair<std::string, MetricValue>>& fields);

private:
    std::FILE* f_ = nullptr;
    std::string path_;
};

// Reads a metrics file back: one JSON object text per line (blank lines skipped). Throws FileError naming the
// path and line of a line that is not a JSON object.
std::vector<std::string> read_metrics_lines(const std::string& path);

}  // namespace xtgrad
