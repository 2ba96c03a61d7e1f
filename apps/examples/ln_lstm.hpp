// Layer-normalised LSTM (Ba, Kiros & Hinton 2016, "Layer normalization", eqs. 20-22): LayerNorm on the input
// projection, on the recurrent projection and on the new cell state before its tanh, each with its own gain and
// shift (the shifts make the LSTM's biases redundant, so there are none, as PyTorch users write this cell):
//   [i f g o] = LN_i(x W_ih^T) + LN_h(h W_hh^T)
//   c' = sigmoid(f) * c + sigmoid(i) * tanh(g)
//   h' = sigmoid(o) * tanh(LN_c(c'))
// The carried c is the unnormalised one (eq. 22). Weights U(-1/sqrt(H), 1/sqrt(H)) as nn.LSTM's; each LayerNorm
// is nn.LayerNorm's (gain 1, shift 0, eps 1e-5), built from public ops in layers/layer_norm.cpp. The input
// projection is one sgemm per window; LN_i normalises each step's rows of it (the same values as over the whole
// window at once, and faster: a step's B x 4H stays in cache, bench_cells 0.83x the LSTM against 0.81x).
#pragma once

#include <cmath>

#include <xtgrad/xtgrad.hpp>

namespace zoo {
using namespace xtgrad;

class LNLSTMCell : public Cell {
public:
    LNLSTMCell(const CellSpec& s, Rng& rng)
        : weight_ih(s.name("weight_ih"), Array({4 * s.hidden, s.input})),
          weight_hh(s.name("weight_hh"), Array({4 * s.hidden, s.hidden})),
          ln_i(s.name("layernorm_i"), 4 * s.hidden), ln_h(s.name("layernorm_h"), 4 * s.hidden),
          ln_c(s.name("layernorm_c"), s.hidden) {
        const float k = 1.0f / std::sqrt(static_cast<float>(s.hidden));
        for (Parameter* p : {&weight_ih, &weight_hh}) fill_uniform(p->value, rng, -k, k);
    }

    std::size_t input_size() const override { return weight_ih.value.shape()[1]; }
    std::size_t hidden_size() const override { return weight_hh.value.shape()[1]; }
    std::vector<StatePart> state_parts() const override { return {{"h", hidden_size()}, {"c", hidden_size()}}; }

    Window project(Ctx& c, Var x) override { return {matmul_t(x, c.tape.param(weight_ih))}; }

    StepOut step(const Step& at, Var x_t, const State& s) override {
        const std::size_t H = hidden_size();
        Var gates = ln_i(x_t) + ln_h(matmul_t(s[0], at.tape().param(weight_hh)));  // (B x 4H)
        Var i = sigmoid(cols(gates, 0, H)), f = sigmoid(cols(gates, H, 2 * H));
        Var g = tanh(cols(gates, 2 * H, 3 * H)), o = sigmoid(cols(gates, 3 * H, 4 * H));
        Var c = f * s[1] + i * g;
        return State{o * tanh(ln_c(c)), c};
    }

    void collect(std::vector<Parameter*>& out) override {
        out.insert(out.end(), {&weight_ih, &weight_hh});
        for (LayerNorm* ln : {&ln_i, &ln_h, &ln_c}) ln->collect(out);
    }

    Parameter weight_ih, weight_hh;  // (4H x in), (4H x H), gates in PyTorch's order i, f, g, o
    LayerNorm ln_i, ln_h, ln_c;
};

}  // namespace zoo
