// Chrome trace-event files (the JSON that chrome://tracing and Perfetto open) from timed spans.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace xtgrad {

// One timed piece of work: a complete event ("ph": "X") of the trace.
struct TraceSpan {
    std::string name;
    std::string category = "xtgrad";
    double start_us = 0.0;     // microseconds since the trace began
    double duration_us = 0.0;
    std::uint32_t pid = 1, tid = 1;
    std::map<std::string, std::string> args;  // shown with the span (shapes, batch numbers, ...)
};

// The spans as a trace document: {"traceEvents": [...], "displayTimeUnit": "ms"}, one complete event per span
// in start order, then metadata events naming the process and each thread in `thread_names`.
// Throws ConfigError naming the span when a time is negative or not finite, or its name is empty.
nlohmann::json chrome_trace(const std::vector<TraceSpan>& spans, const std::string& process_name = "xtgrad",
                            const std::map<std::uint32_t, std::string>& thread_names = {});

// Writes chrome_trace(...) to `path`; throws FileError naming the file when it cannot be written.
void write_chrome_trace(const std::string& path, const std::vector<TraceSpan>& spans,
                        const std::string& process_name = "xtgrad",
                        const std::map<std::uint32_t, std::string>& thread_names = {});

// Records nested spans on one thread with a steady clock: begin("forward") ... end(). Times are relative to
// the recorder's construction.
class TraceRecorder {
public:
    TraceRecorder();
    // Opens a span (nested inside any open span).
    void begin(const std::string& name, const std::string& category = "xtgrad", std::uint32_t tid = 1);
    // Closes the innermost open span; throws ConfigError when none is open.
    void end();
    // The closed spans, in the order they were closed.
    const std::vector<TraceSpan>& spans() const { return spans_; }
    // Spans still open.
    std::size_t open() const { return open_.size(); }

private:
    double now_us() const;
    std::chrono::steady_clock::time_point origin_;
    std::vector<TraceSpan> open_, spans_;
};

}  // namespace xtgrad
