#include <xtgrad/layers/tbptt.hpp>

#include <algorithm>

#include <fmt/core.h>

#include <xtgrad/lib/error.hpp>

namespace xtgrad {

double truncated_bptt(Tape& tape, std::size_t length, std::size_t window, const WindowLoss& loss,
                      const WindowUpdate& update) {
    if (window == 0) throw ConfigError("truncated_bptt: the window must be at least 1 step");
    double total = 0.0;
    std::size_t k = 0;
    for (std::size_t t0 = 0; t0 < length; t0 += window, ++k) {
        const std::size_t t1 = std::min(length, t0 + window);
        tape.clear();
        const Var l = loss(tape, t0, t1);
        tape.backward(l);
        const float v = l.value()(0, 0);
        total += static_cast<double>(v) * static_cast<double>(t1 - t0);
        if (update) update(k, v);
    }
    tape.clear();
    return length ? total / static_cast<double>(length) : 0.0;
}

}  // namespace xtgrad
