// Peephole LSTM (Gers, Schraudolph & Schmidhuber 2002, "Learning precise timing with LSTM recurrent networks",
// JMLR 3, section 2, in the vector notation of Greff et al. 2017, "LSTM: a search space odyssey", section 2):
// the input and forget gates also see the previous cell state, the output gate the new one, each through a
// diagonal ("peephole") weight:
//   i  = sigmoid(W_i x + b_i + U_i h + b'_i + p_i * c)
//   f  = sigmoid(W_f x + b_f + U_f h + b'_f + p_f * c)
//   g  = tanh(W_g x + b_g + U_g h + b'_g)
//   c' = f * c + i * g
//   o  = sigmoid(W_o x + b_o + U_o h + b'_o + p_o * c')
//   h' = o * tanh(c')
// GateCell gives PyTorch's LSTM parameters (gate order i, f, g, o), initialisation U(-1/sqrt(H), 1/sqrt(H)) and
// weight drop; the peepholes weight_ci, weight_cf, weight_co (H each) are drawn the same way.
#pragma once

#include <cmath>

#include <xtgrad/xtgrad.hpp>

namespace zoo {
using namespace xtgrad;

class PeepholeLSTMCell : public GateCell {
public:
    PeepholeLSTMCell(const CellSpec& s, Rng& rng)
        : GateCell(s, 4, rng), p_i(peephole(s, "weight_ci", rng)), p_f(peephole(s, "weight_cf", rng)),
          p_o(peephole(s, "weight_co", rng)) {}

    std::vector<StatePart> state_parts() const override { return {{"h", hidden_size()}, {"c", hidden_size()}}; }

    StepOut step(const Step& at, Var x_t, const State& s) override {
        Tape& t = at.tape();
        const std::size_t H = hidden_size();
        Var gates = x_t + recurrent(at, s[0]);  // (B x 4H): W x + b + U h + b'
        Var i = sigmoid(cols(gates, 0, H) + t.param(p_i) * s[1]);
        Var f = sigmoid(cols(gates, H, 2 * H) + t.param(p_f) * s[1]);
        Var c = f * s[1] + i * tanh(cols(gates, 2 * H, 3 * H));
        Var o = sigmoid(cols(gates, 3 * H, 4 * H) + t.param(p_o) * c);
        return State{o * tanh(c), c};
    }

    void collect(std::vector<Parameter*>& out) override {
        GateCell::collect(out);
        out.insert(out.end(), {&p_i, &p_f, &p_o});
    }

    static Parameter peephole(const CellSpec& s, const char* name, Rng& rng) {
        Parameter p(s.name(name), Array({1, s.hidden}), {s.hidden});
        const float k = 1.0f / std::sqrt(static_cast<float>(s.hidden));
        fill_uniform(p.value, rng, -k, k);
        return p;
    }

    Parameter p_i, p_f, p_o;  // (1 x H) diagonal weights from the cell state
};

}  // namespace zoo
