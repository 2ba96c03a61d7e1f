// Vectorised (xsimd) kernels over raw float spans: the transcendental functions the ops need.
#pragma once

#include <cstddef>
#include <cstdint>

namespace xtgrad::vmath {

// y[i] = exp(x[i])
void exp(const float* x, float* y, std::size_t n);
// y[i] = log(x[i])
void log(const float* x, float* y, std::size_t n);
// y[i] = tanh(x[i])
void tanh(const float* x, float* y, std::size_t n);
// y[i] = 1 / (1 + exp(-x[i]))
void sigmoid(const float* x, float* y, std::size_t n);
// y[i] = sqrt(x[i])
void sqrt(const float* x, float* y, std::size_t n);
// y[i] = 1 / sqrt(x[i]) (a true division, not the approximate reciprocal instruction)
void rsqrt(const float* x, float* y, std::size_t n);
// y[i] = x[i]^p: exact repeated products for integer p (any sign of x), exp(p log x) otherwise (x > 0)
void pow(const float* x, float* y, std::size_t n, float p);
// sum x[i], in vector lanes (float)
float sum(const float* x, std::size_t n);
// sum a[i] b[i], in vector lanes (float)
float dot(const float* a, const float* b, std::size_t n);
// y[i] += a x[i]
void axpy(float a, const float* x, float* y, std::size_t n);
// max over x[0..n), n > 0
float max(const float* x, std::size_t n);
// log(sum exp(x[i])), computed stably around the maximum; n > 0
float logsumexp(const float* x, std::size_t n);
// y[i] = scale * exp(x[i] - shift)       (assign), or
// y[i] += scale * exp(x[i] - shift)      (accumulate = true)
void scaled_exp(const float* x, float* y, std::size_t n, float shift, float scale, bool accumulate);

// y[i] = x[i] rounded to bf16 (xtgrad::bf16, lib/bf16.hpp): to nearest, ties to even
void to_bf16(const float* x, std::uint16_t* y, std::size_t n);
// y[i] = x[i] widened from bf16 (exact)
void from_bf16(const std::uint16_t* x, float* y, std::size_t n);
// y[i] = bf16(scale * exp(x[i] - shift)), y in bf16, rounded to nearest even
void scaled_exp_bf16(const float* x, std::uint16_t* y, std::size_t n, float shift, float scale);
// y[i] += a x[i], x in bf16 (xtgrad::bf16)
void axpy_bf16(float a, const std::uint16_t* x, float* y, std::size_t n);

// sum x[i]^2: exact squares summed in double lanes (vectorised)
double sum_squares(const float* x, std::size_t n);
// x[i] *= c
void scale(float* x, std::size_t n, float c);

}  // namespace xtgrad::vmath
