// bfloat16 numbers as stored (the upper half of a float32) and their conversions to and from float.
#pragma once

#include <cstdint>
#include <cstring>

namespace xtgrad {

// A bfloat16 number as stored: the upper 16 bits of a float32 (sign, 8-bit exponent, 7 stored mantissa bits), so its
// relative rounding error is at most 2^-9 (round to nearest).
using bf16 = std::uint16_t;

// f rounded to bf16: to nearest, ties to even; NaN stays a (quiet) NaN, infinities stay. A loop of these vectorises.
inline bf16 float_to_bf16(float f) {
    std::uint32_t u;
    std::memcpy(&u, &f, sizeof u);
    const std::uint32_t r = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
    return static_cast<bf16>((u & 0x7fffffffu) > 0x7f800000u ? (u >> 16) | 0x40u : r);
}

// h widened to float (exact).
inline float bf16_to_float(bf16 h) {
    const std::uint32_t u = static_cast<std::uint32_t>(h) << 16;
    float f;
    std::memcpy(&f, &u, sizeof f);
    return f;
}

}  // namespace xtgrad
