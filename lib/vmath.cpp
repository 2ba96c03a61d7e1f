#include <xtgrad/lib/vmath.hpp>

#include <algorithm>
#include <cmath>

// GCC 12 warns inside its own AVX-512 intrinsics when xsimd inlines them; the warning is spurious.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <xsimd/xsimd.hpp>

namespace xtgrad::vmath {

namespace {

using B = xsimd::batch<float>;
constexpr std::size_t W = B::size;

// Applies a batch function f and its scalar twin g over a span.
template <class F, class G>
void map(const float* x, float* y, std::size_t n, F f, G g) {
    std::size_t i = 0;
    for (; i + W <= n; i += W) f(B::load_unaligned(x + i)).store_unaligned(y + i);
    for (; i < n; ++i) y[i] = g(x[i]);
}

}  // namespace

void exp(const float* x, float* y, std::size_t n) {
    map(x, y, n, [](B v) { return xsimd::exp(v); }, [](float v) { return std::exp(v); });
}

void log(const float* x, float* y, std::size_t n) {
    map(x, y, n, [](B v) { return xsimd::log(v); }, [](float v) { return std::log(v); });
}

void tanh(const float* x, float* y, std::size_t n) {
    map(x, y, n, [](B v) { return xsimd::tanh(v); }, [](float v) { return std::tanh(v); });
}

void sigmoid(const float* x, float* y, std::size_t n) {
    map(
        x, y, n, [](B v) { return B(1.0f) / (B(1.0f) + xsimd::exp(-v)); },
        [](float v) { return 1.0f / (1.0f + std::exp(-v)); });
}

float max(const float* x, std::size_t n) {
    std::size_t i = 0;
    float m = x[0];
    if (n >= W) {
        B acc = B::load_unaligned(x);
        for (i = W; i + W <= n; i += W) acc = xsimd::max(acc, B::load_unaligned(x + i));
        alignas(64) float lanes[W];
        acc.store_aligned(lanes);
        m = *std::max_element(lanes, lanes + W);
    }
    for (; i < n; ++i) m = std::max(m, x[i]);
    return m;
}

float logsumexp(const float* x, std::size_t n) {
    const float m = max(x, n);
    if (!std::isfinite(m)) return m;  // +inf or NaN propagate; -inf only when every entry is -inf
    const B bm(m);
    B acc(0.0f);
    std::size_t i = 0;
    for (; i + W <= n; i += W) acc += xsimd::exp(B::load_unaligned(x + i) - bm);
    double s = xsimd::hadd(acc);
    for (; i < n; ++i) s += std::exp(x[i] - m);
    return m + static_cast<float>(std::log(s));
}

void scaled_exp(const float* x, float* y, std::size_t n, float shift, float scale, bool accumulate) {
    const B bs(shift), bk(scale);
    std::size_t i = 0;
    if (accumulate) {
        for (; i + W <= n; i += W)
            (B::load_unaligned(y + i) + bk * xsimd::exp(B::load_unaligned(x + i) - bs)).store_unaligned(y + i);
        for (; i < n; ++i) y[i] += scale * std::exp(x[i] - shift);
    } else {
        for (; i + W <= n; i += W) (bk * xsimd::exp(B::load_unaligned(x + i) - bs)).store_unaligned(y + i);
        for (; i < n; ++i) y[i] = scale * std::exp(x[i] - shift);
    }
}

double sum_squares(const float* x, std::size_t n) {
    double total = 0.0;
    constexpr std::size_t block = 4096;  // float partial sums stay accurate over a block
    for (std::size_t b0 = 0; b0 < n; b0 += block) {
        const std::size_t b1 = std::min(n, b0 + block);
        B acc(0.0f);
        std::size_t i = b0;
        for (; i + W <= b1; i += W) {
            const B v = B::load_unaligned(x + i);
            acc = xsimd::fma(v, v, acc);
        }
        double part = xsimd::hadd(acc);
        for (; i < b1; ++i) part += static_cast<double>(x[i]) * x[i];
        total += part;
    }
    return total;
}

void scale(float* x, std::size_t n, float c) {
    const B bc(c);
    std::size_t i = 0;
    for (; i + W <= n; i += W) (B::load_unaligned(x + i) * bc).store_unaligned(x + i);
    for (; i < n; ++i) x[i] *= c;
}

}  // namespace xtgrad::vmath
