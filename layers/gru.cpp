#include "layers/gru.hpp"

#include "tape/ops.hpp"

namespace xtgrad {

GRUCell::GRUCell(const std::string& prefix, const std::string& suffix, std::size_t in, std::size_t H, Rng& rng) {
    init_recurrent_params(weight_ih, weight_hh, bias_ih, bias_hh, prefix, suffix, 3, in, H, rng);
}

// x W_ih^T + b_ih for the whole window: (T*B x 3H)
Var GRUCell::project(Var x) { return affine(x, x.tape->param(weight_ih), x.tape->param(bias_ih)); }

State GRUCell::step(Var x_t, const State& s) {
    Tape& t = *x_t.tape;
    const std::size_t H = hidden_size();
    Var hh = affine(s.h, t.param(weight_hh), t.param(bias_hh));  // (B x 3H)
    Var r = sigmoid(cols(x_t, 0, H) + cols(hh, 0, H));
    Var z = sigmoid(cols(x_t, H, 2 * H) + cols(hh, H, 2 * H));
    Var n = tanh(cols(x_t, 2 * H, 3 * H) + r * cols(hh, 2 * H, 3 * H));
    return {n + z * (s.h - n), {}};  // = (1 - z) * n + z * h
}

void GRUCell::collect(std::vector<Parameter*>& out) {
    out.insert(out.end(), {&weight_ih, &weight_hh, &bias_ih, &bias_hh});
}

}  // namespace xtgrad
