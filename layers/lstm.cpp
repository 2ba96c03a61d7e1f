#include <xtgrad/layers/lstm.hpp>

#include <xtgrad/tape/ops.hpp>

namespace xtgrad {

State LSTMCell::step(Var x_t, const State& s) {
    const std::size_t H = hidden_size();
    Var gates = x_t + recurrent(s.h);  // (B x 4H)
    Var i = sigmoid(cols(gates, 0, H));
    Var f = sigmoid(cols(gates, H, 2 * H));
    Var g = tanh(cols(gates, 2 * H, 3 * H));
    Var o = sigmoid(cols(gates, 3 * H, 4 * H));
    Var c = f * s.c + i * g;
    return {o * tanh(c), c};
}

}  // namespace xtgrad
