#include <xtgrad/lib/array.hpp>

#include <fmt/core.h>

namespace xtgrad {

std::string shape_str(const Shape& s) { return fmt::format("({} x {})", s[0], s[1]); }

std::string shape_str(const Array& a) { return shape_str(shape_of(a)); }

void ensure_shape(Array& a, Shape s) {
    if (a.shape()[0] == s[0] && a.shape()[1] == s[1]) return;
    if (a.size() == s[0] * s[1]) {
        a.reshape(s);  // same storage, new strides: no allocation
    } else {
        a.resize(s);
    }
}

void copy_into(Array& dst, const Array& src) {
    ensure_shape(dst, shape_of(src));
    std::copy(src.begin(), src.end(), dst.begin());
}

}  // namespace xtgrad
