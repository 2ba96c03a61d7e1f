#include <xtgrad/optim/clip.hpp>

#include <algorithm>
#include <cmath>

#include <fmt/core.h>

#include <xtgrad/lib/error.hpp>
#include <xtgrad/lib/parallel.hpp>
#include <xtgrad/lib/vmath.hpp>

namespace xtgrad {

namespace {

constexpr std::size_t kChunk = std::size_t{1} << 16;  // entries per partial sum and per thread's share at least

// sum x^2 over a span, as partial sums of fixed chunks added in order: the same number on any number of threads.
double squares(const float* x, std::size_t n) {
    const std::size_t chunks = (n + kChunk - 1) / kChunk;
    if (chunks <= 1) return vmath::sum_squares(x, n);
    thread_local std::vector<double> partial;  // capacity kept
    std::vector<double>& part = partial;       // this thread's, also where the helpers write
    part.resize(chunks);
    parallel_for(chunks, 1, [&](std::size_t c0, std::size_t c1) {
        for (std::size_t c = c0; c < c1; ++c) part[c] = vmath::sum_squares(x + c * kChunk, std::min(kChunk, n - c * kChunk));
    });
    double s = 0.0;
    for (double v : part) s += v;
    return s;
}

}  // namespace

double grad_norm(const std::vector<Parameter*>& params) {
    double s = 0.0;
    for (const Parameter* p : params) {
        const float* g = p->grad.data();
        p->for_each_live_grad([&](std::size_t off, std::size_t n) { s += squares(g + off, n); });
    }
    return std::sqrt(s);
}

ClipResult clip_grad_norm(const std::vector<Parameter*>& params, double max_norm) {
    if (!(max_norm > 0.0)) throw ConfigError(fmt::format("clip_grad_norm: max_norm must be positive, got {}", max_norm));
    ClipResult r;
    r.norm = grad_norm(params);
    r.finite = std::isfinite(r.norm);
    if (!r.finite) return r;
    const double coef = max_norm / (r.norm + 1e-6);
    if (coef < 1.0) {
        const auto c = static_cast<float>(coef);
        for (Parameter* p : params) {
            float* g = p->grad.data();
            p->for_each_live_grad([&](std::size_t off, std::size_t n) {
                parallel_for(n, kChunk, [&](std::size_t b, std::size_t e) { vmath::scale(g + off + b, e - b, c); });
            });
        }
        r.clipped = true;
    }
    return r;
}

std::size_t clip_grad_value(const std::vector<Parameter*>& params, float limit) {
    if (!(limit > 0.0f)) throw ConfigError(fmt::format("clip_grad_value: limit must be positive, got {}", limit));
    std::size_t n = 0;
    for (Parameter* p : params)
        for (float& g : p->grad) {
            const float c = std::clamp(g, -limit, limit);
            n += c != g;
            g = c;
        }
    return n;
}

}  // namespace xtgrad
