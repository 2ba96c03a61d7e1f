// A user-defined cell: the Minimal Gated Unit (Zhou et al., 2016), written only with public tape ops.
//   f  = sigmoid(x W_f^T + b_f + h U_f^T)
//   h~ = tanh(x W_h^T + b_h + (f * h) U_h^T)
//   h' = (1 - f) * h + f * h~
#pragma once

#include <cmath>

#include <xtgrad/layers/cell.hpp>
#include <xtgrad/tape/ops.hpp>

namespace xtgrad {

class MGUCell : public Cell {
public:
    MGUCell(const std::string& prefix, const std::string& suffix, std::size_t in, std::size_t H, Rng& rng)
        : W(prefix + ".weight_ih" + suffix, Array({2 * H, in})),  // [W_f; W_h]
          b(prefix + ".bias_ih" + suffix, Array({1, 2 * H}), {2 * H}),
          Uf(prefix + ".weight_hf" + suffix, Array({H, H})),
          Uh(prefix + ".weight_hh" + suffix, Array({H, H})) {
        const float k = 1.0f / std::sqrt(static_cast<float>(H));
        for (Parameter* p : {&W, &b, &Uf, &Uh}) fill_uniform(p->value, rng, -k, k);
    }

    std::size_t input_size() const override { return W.value.shape()[1]; }
    std::size_t hidden_size() const override { return Uh.value.shape()[0]; }

    // Both input projections of the whole window in one matrix product: (T*B x 2H).
    Var project(Var x) override { return affine(x, x.tape->param(W), x.tape->param(b)); }

    State step(Var x_t, const State& s) override {
        Tape& t = *x_t.tape;
        const std::size_t H = hidden_size();
        Var f = sigmoid(cols(x_t, 0, H) + matmul_t(s.h, t.param(Uf)));
        Var h_tilde = tanh(cols(x_t, H, 2 * H) + matmul_t(f * s.h, t.param(Uh)));
        return {s.h + f * (h_tilde - s.h), {}};  // = (1 - f) * h + f * h~
    }

    void collect(std::vector<Parameter*>& out) override { out.insert(out.end(), {&W, &b, &Uf, &Uh}); }

    Parameter W, b, Uf, Uh;
};

}  // namespace xtgrad
