// SRU, the simple recurrent unit (Lei & Zhang 2017, "Training RNNs as fast as CNNs", arXiv:1709.02755v2,
// eqs. 3-7): gates computed from the input alone, so that the whole window's projections are one matrix product
// and a step is elementwise; the carried state is c, the output h (a highway mix of tanh(c) and the input):
//   x~ = W x,   f = sigmoid(W_f x + b_f),   r = sigmoid(W_r x + b_r)
//   c' = f * c + (1 - f) * x~
//   h  = r * tanh(c') + (1 - r) * x        (x replaced by W_h x when the input is not H wide, as the authors' code)
// Weights and biases U(-1/sqrt(H), 1/sqrt(H)) as PyTorch's recurrent layers.
#pragma once

#include <cmath>

#include <xtgrad/xtgrad.hpp>

namespace zoo {
using namespace xtgrad;

class SRUCell : public Cell {
public:
    SRUCell(const CellSpec& s, Rng& rng)
        : weight_ih(s.name("weight_ih"), Array({(s.input == s.hidden ? 3 : 4) * s.hidden, s.input})),  // W_f W_r W W_h
          bias_ih(s.name("bias_ih"), Array({1, 2 * s.hidden}), {2 * s.hidden}) {                      // b_f b_r
        const float k = 1.0f / std::sqrt(static_cast<float>(s.hidden));
        for (Parameter* p : {&weight_ih, &bias_ih}) fill_uniform(p->value, rng, -k, k);
    }

    std::size_t input_size() const override { return weight_ih.value.shape()[1]; }
    std::size_t hidden_size() const override { return bias_ih.value.shape()[1] / 2; }
    std::vector<StatePart> state_parts() const override { return {{"c", hidden_size()}}; }

    // The whole window at once: [f r x~ x_highway], (T*B x 4H).
    Window project(Ctx& c, Var x) override {
        const std::size_t H = hidden_size();
        Var p = matmul_t(x, c.tape.param(weight_ih));
        Var fr = sigmoid(cols(p, 0, 2 * H) + c.tape.param(bias_ih));
        Var rest = cols(p, 2 * H, p.cols());  // x~, and W_h x when the input is not H wide
        return {concat_cols(p.cols() == 3 * H ? std::vector<Var>{fr, rest, x} : std::vector<Var>{fr, rest})};
    }

    StepOut step(const Step& at, Var x_t, const State& s) override {
        (void)at;
        const std::size_t H = hidden_size();
        Var f = cols(x_t, 0, H), r = cols(x_t, H, 2 * H);
        Var x_tilde = cols(x_t, 2 * H, 3 * H), x_hw = cols(x_t, 3 * H, 4 * H);
        Var c = x_tilde + f * (s[0] - x_tilde);  // = f * c + (1 - f) * x~
        return {State{c}, x_hw + r * (tanh(c) - x_hw)};  // h = r * tanh(c) + (1 - r) * x
    }

    void collect(std::vector<Parameter*>& out) override { out.insert(out.end(), {&weight_ih, &bias_ih}); }

    Parameter weight_ih, bias_ih;
};

}  // namespace zoo
