#include <xtgrad/layers/gru.hpp>

#include <xtgrad/tape/ops.hpp>

namespace xtgrad {

State GRUCell::step(Var x_t, const State& s) {
    const std::size_t H = hidden_size();
    Var hh = recurrent(s.h);  // (B x 3H)
    Var r = sigmoid(cols(x_t, 0, H) + cols(hh, 0, H));
    Var z = sigmoid(cols(x_t, H, 2 * H) + cols(hh, H, 2 * H));
    Var n = tanh(cols(x_t, 2 * H, 3 * H) + r * cols(hh, 2 * H, 3 * H));
    return {n + z * (s.h - n), {}};  // = (1 - z) * n + z * h
}

}  // namespace xtgrad
