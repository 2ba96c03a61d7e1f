#include <xtgrad/lib/vmath.hpp>

#include <xtgrad/lib/bf16.hpp>

#include <algorithm>
#include <cmath>

// GCC 12 warns inside its own AVX-512 intrinsics when xsimd inlines them; the warning is spurious.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <xsimd/xsimd.hpp>
#if defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace xtgrad::vmath {

namespace {

// xsimd 8.1's AVX-512BW select() does not compile without optimisation (GCC defines the byte and word blend
// intrinsics as macros at -O0, and they cannot convert xsimd's batches): an unoptimised build on an AVX-512BW
// machine uses the AVX-512DQ kernels instead. Float code is the same on both (BW only adds byte and word
// integer ops); optimised builds keep the machine's best architecture.
#if defined(__AVX512BW__) && !defined(__OPTIMIZE__)
using Arch = xsimd::avx512dq;
#else
using Arch = xsimd::default_arch;
#endif
using B = xsimd::batch<float, Arch>;
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

void sqrt(const float* x, float* y, std::size_t n) {
    map(x, y, n, [](B v) { return xsimd::sqrt(v); }, [](float v) { return std::sqrt(v); });
}

void rsqrt(const float* x, float* y, std::size_t n) {
    map(x, y, n, [](B v) { return B(1.0f) / xsimd::sqrt(v); }, [](float v) { return 1.0f / std::sqrt(v); });
}

namespace {
// x^e for an integer e >= 0 by repeated squaring (exact in the sign of x).
template <class T>
T ipow(T x, unsigned e) {
    T r(1.0f);
    while (e) {
        if (e & 1u) r *= x;
        x *= x;
        e >>= 1;
    }
    return r;
}
}  // namespace

void pow(const float* x, float* y, std::size_t n, float p) {
    if (p == std::nearbyint(p) && std::abs(p) <= 64.0f) {
        const unsigned e = static_cast<unsigned>(std::abs(p));
        if (p >= 0.0f)
            map(x, y, n, [e](B v) { return ipow(v, e); }, [e](float v) { return ipow(v, e); });
        else
            map(x, y, n, [e](B v) { return B(1.0f) / ipow(v, e); }, [e](float v) { return 1.0f / ipow(v, e); });
        return;
    }
    if (p == 0.5f) return sqrt(x, y, n);
    if (p == -0.5f) return rsqrt(x, y, n);
    const B bp(p);
    map(x, y, n, [bp](B v) { return xsimd::pow(v, bp); }, [p](float v) { return std::pow(v, p); });
}

float sum(const float* x, std::size_t n) {
    B a0(0.0f), a1(0.0f);
    std::size_t i = 0;
    for (; i + 2 * W <= n; i += 2 * W) {
        a0 += B::load_unaligned(x + i);
        a1 += B::load_unaligned(x + i + W);
    }
    if (i + W <= n) {
        a0 += B::load_unaligned(x + i);
        i += W;
    }
    float s = xsimd::hadd(a0 + a1);
    for (; i < n; ++i) s += x[i];
    return s;
}

float dot(const float* a, const float* b, std::size_t n) {
    B a0(0.0f), a1(0.0f);
    std::size_t i = 0;
    for (; i + 2 * W <= n; i += 2 * W) {
        a0 = xsimd::fma(B::load_unaligned(a + i), B::load_unaligned(b + i), a0);
        a1 = xsimd::fma(B::load_unaligned(a + i + W), B::load_unaligned(b + i + W), a1);
    }
    if (i + W <= n) {
        a0 = xsimd::fma(B::load_unaligned(a + i), B::load_unaligned(b + i), a0);
        i += W;
    }
    float s = xsimd::hadd(a0 + a1);
    for (; i < n; ++i) s += a[i] * b[i];
    return s;
}

void axpy(float a, const float* x, float* y, std::size_t n) {
    const B ba(a);
    std::size_t i = 0;
    for (; i + W <= n; i += W) xsimd::fma(ba, B::load_unaligned(x + i), B::load_unaligned(y + i)).store_unaligned(y + i);
    if (i == n) return;
    // The tail through the same batch operation: every entry rounds alike however the array is split (a row-tracked
    // gradient's rows one by one, or the whole table), whether or not the compiler contracts a scalar a * x + y.
    alignas(64) float xs[W] = {}, ys[W] = {};
    std::copy(x + i, x + n, xs);
    std::copy(y + i, y + n, ys);
    xsimd::fma(ba, B::load_aligned(xs), B::load_aligned(ys)).store_aligned(ys);
    std::copy(ys, ys + (n - i), y + i);
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

void scaled_exp_bf16(const float* x, std::uint16_t* y, std::size_t n, float shift, float scale) {
    constexpr std::size_t chunk = 1024;  // through an L1-resident float buffer
    alignas(64) float buf[chunk];
    for (std::size_t i0 = 0; i0 < n; i0 += chunk) {
        const std::size_t m = std::min(chunk, n - i0);
        scaled_exp(x + i0, buf, m, shift, scale, false);
        for (std::size_t i = 0; i < m; ++i) y[i0 + i] = float_to_bf16(buf[i]);
    }
}

void to_bf16(const float* x, std::uint16_t* y, std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) y[i] = float_to_bf16(x[i]);
}

void from_bf16(const std::uint16_t* x, float* y, std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) y[i] = bf16_to_float(x[i]);
}

void axpy_bf16(float a, const std::uint16_t* x, float* y, std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) y[i] += a * bf16_to_float(x[i]);
}

double sum_squares(const float* x, std::size_t n) {
    // Each square is exact in double (24 x 24 bits < 53) and the sums round at 2^-53: the result hardly depends on
    // how an array is split (a row-sparse gradient's rows one by one, or the whole table).
    double total = 0.0;
    std::size_t i = 0;
#if defined(__AVX512F__)
    __m512d a0 = _mm512_setzero_pd(), a1 = a0, a2 = a0, a3 = a0;
    for (; i + 32 <= n; i += 32) {  // four independent chains keep enough loads in flight
        const __m512d v0 = _mm512_cvtps_pd(_mm256_loadu_ps(x + i)), v1 = _mm512_cvtps_pd(_mm256_loadu_ps(x + i + 8));
        const __m512d v2 = _mm512_cvtps_pd(_mm256_loadu_ps(x + i + 16)), v3 = _mm512_cvtps_pd(_mm256_loadu_ps(x + i + 24));
        a0 = _mm512_fmadd_pd(v0, v0, a0);
        a1 = _mm512_fmadd_pd(v1, v1, a1);
        a2 = _mm512_fmadd_pd(v2, v2, a2);
        a3 = _mm512_fmadd_pd(v3, v3, a3);
    }
    total = _mm512_reduce_add_pd(_mm512_add_pd(_mm512_add_pd(a0, a1), _mm512_add_pd(a2, a3)));
#endif
    double s[8] = {};
    for (; i + 8 <= n; i += 8)
        for (std::size_t j = 0; j < 8; ++j) s[j] += static_cast<double>(x[i + j]) * x[i + j];
    for (; i < n; ++i) s[0] += static_cast<double>(x[i]) * x[i];
    for (double v : s) total += v;
    return total;
}

void scale(float* x, std::size_t n, float c) {
    const B bc(c);
    std::size_t i = 0;
    for (; i + W <= n; i += W) (B::load_unaligned(x + i) * bc).store_unaligned(x + i);
    for (; i < n; ++i) x[i] *= c;
}

}  // namespace xtgrad::vmath
