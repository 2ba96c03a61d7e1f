#include "layers/lstm.hpp"

#include "tape/ops.hpp"

namespace xtgrad {

LSTMCell::LSTMCell(const std::string& prefix, const std::string& suffix, std::size_t in, std::size_t H, Rng& rng) {
    init_recurrent_params(weight_ih, weight_hh, bias_ih, bias_hh, prefix, suffix, 4, in, H, rng);
}

// x W_ih^T + b_ih for the whole window: (T*B x 4H)
Var LSTMCell::project(Var x) { return affine(x, x.tape->param(weight_ih), x.tape->param(bias_ih)); }

State LSTMCell::step(Var x_t, const State& s) {
    Tape& t = *x_t.tape;
    const std::size_t H = hidden_size();
    Var gates = x_t + affine(s.h, t.param(weight_hh), t.param(bias_hh));  // (B x 4H)
    Var i = sigmoid(cols(gates, 0, H));
    Var f = sigmoid(cols(gates, H, 2 * H));
    Var g = tanh(cols(gates, 2 * H, 3 * H));
    Var o = sigmoid(cols(gates, 3 * H, 4 * H));
    Var c = f * s.c + i * g;
    return {o * tanh(c), c};
}

void LSTMCell::collect(std::vector<Parameter*>& out) {
    out.insert(out.end(), {&weight_ih, &weight_hh, &bias_ih, &bias_hh});
}

}  // namespace xtgrad
