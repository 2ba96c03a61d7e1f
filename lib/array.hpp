// The one array type of xtgrad: a row-major float32 matrix, plus shape helpers.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include <xtensor/xtensor.hpp>

namespace xtgrad {

// Every value on the tape: a (rows x cols) row-major float32 matrix. Vectors are (1 x n), scalars (1 x 1).
using Array = xt::xtensor<float, 2>;

// A 2-D shape, rows first.
using Shape = std::array<std::size_t, 2>;

// Token or class ids, as used by gather and cross_entropy.
using Ids = std::vector<std::int32_t>;

// "(rows x cols)", for error messages.
std::string shape_str(const Shape& s);
std::string shape_str(const Array& a);

// The shape of an array as a Shape.
inline Shape shape_of(const Array& a) { return {a.shape()[0], a.shape()[1]}; }

// Resizes a to s; keeps the buffer (no allocation) when the element count is unchanged.
void ensure_shape(Array& a, Shape s);

// dst = src, reusing dst's buffer when the element count matches.
void copy_into(Array& dst, const Array& src);

}  // namespace xtgrad
