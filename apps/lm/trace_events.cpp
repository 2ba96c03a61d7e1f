#include <xtgrad/apps/lm/trace_events.hpp>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>

#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include <xtgrad/lib/error.hpp>

namespace xtgrad {

nlohmann::json chrome_trace(const std::vector<TraceSpan>& spans, const std::string& process_name,
                            const std::map<std::uint32_t, std::string>& thread_names) {
    std::vector<std::size_t> order(spans.size());
    for (std::size_t i = 0; i < spans.size(); ++i) {
        const TraceSpan& s = spans[i];
        if (s.name.empty()) throw ConfigError(fmt::format("trace span {}: empty name", i));
        if (!std::isfinite(s.start_us) || s.start_us < 0.0)
            throw ConfigError(fmt::format("trace span {} '{}': start {} us is not a finite time >= 0", i, s.name, s.start_us));
        if (!std::isfinite(s.duration_us) || s.duration_us < 0.0)
            throw ConfigError(fmt::format("trace span {} '{}': duration {} us is not a finite time >= 0", i, s.name, s.duration_us));
        order[i] = i;
    }
    // Start order; an enclosing span (longer) before the spans it contains when they start together.
    std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
        if (spans[a].start_us != spans[b].start_us) return spans[a].start_us < spans[b].start_us;
        return spans[a].duration_us > spans[b].duration_us;
    });
    nlohmann::json events = nlohmann::json::array();
    std::map<std::uint32_t, bool> pids;
    for (std::size_t i : order) {
        const TraceSpan& s = spans[i];
        nlohmann::json e = {{"name", s.name}, {"cat", s.category}, {"ph", "X"}, {"ts", s.start_us},
                            {"dur", s.duration_us}, {"pid", s.pid}, {"tid", s.tid}};
        if (!s.args.empty()) e["args"] = s.args;
        events.push_back(std::move(e));
        pids[s.pid] = true;
    }
    if (pids.empty()) pids[1] = true;
    for (const auto& [pid, _] : pids)
        events.push_back({{"name", "process_name"}, {"ph", "M"}, {"pid", pid}, {"tid", 0}, {"args", {{"name", process_name}}}});
    for (const auto& [tid, name] : thread_names)
        for (const auto& [pid, _] : pids)
            events.push_back({{"name", "thread_name"}, {"ph", "M"}, {"pid", pid}, {"tid", tid}, {"args", {{"name", name}}}});
    return {{"traceEvents", std::move(events)}, {"displayTimeUnit", "ms"}};
}

void write_chrome_trace(const std::string& path, const std::vector<TraceSpan>& spans, const std::string& process_name,
                        const std::map<std::uint32_t, std::string>& thread_names) {
    const std::string text = chrome_trace(spans, process_name, thread_names).dump(-1, ' ', false,
                                                                                  nlohmann::json::error_handler_t::replace);
    std::FILE* f = std::fopen(path.c_str(), "wb");
    if (!f) throw FileError(fmt::format("{}: cannot write the trace: {}", path, std::strerror(errno)));
    const bool ok = std::fwrite(text.data(), 1, text.size(), f) == text.size() && std::fputc('\n', f) != EOF;
    if (std::fclose(f) != 0 || !ok) throw FileError(fmt::format("{}: cannot write the trace (disk full?)", path));
}

TraceRecorder::TraceRecorder() : origin_(std::chrono::steady_clock::now()) {}

double TraceRecorder::now_us() const {
    return std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - origin_).count();
}

void TraceRecorder::begin(const std::string& name, const std::string& category, std::uint32_t tid) {
    TraceSpan s;
    s.name = name;
    s.category = category;
    s.tid = tid;
    s.start_us = now_us();
    open_.push_back(std::move(s));
}

void TraceRecorder::end() {
    if (open_.empty()) throw ConfigError("TraceRecorder::end: no span is open");
    TraceSpan s = std::move(open_.back());
    open_.pop_back();
    s.duration_us = std::max(0.0, now_us() - s.start_us);
    spans_.push_back(std::move(s));
}

}  // namespace xtgrad
