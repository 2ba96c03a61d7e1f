// IndRNN (Li, Li, Cook, Zhu & Gao 2018, "Independently recurrent neural network (IndRNN): building a longer and
// deeper RNN", eq. 2) with relu: each unit sees only its own previous value, through one recurrent weight u_n:
//   h' = relu(x W^T + b + u * h)        (u: H weights, elementwise)
// W and b are drawn U(-1/sqrt(H), 1/sqrt(H)) as nn.RNN's input weights; u U(0, 1) as in the authors' code.
// Everything but the elementwise recurrence is one matrix product per window.
#pragma once

#include <cmath>

#include <xtgrad/xtgrad.hpp>

namespace zoo {
using namespace xtgrad;

class IndRNNCell : public Cell {
public:
    IndRNNCell(const CellSpec& s, Rng& rng)
        : weight_ih(s.name("weight_ih"), Array({s.hidden, s.input})),
          bias_ih(s.name("bias_ih"), Array({1, s.hidden}), {s.hidden}),
          weight_hh(s.name("weight_hh"), Array({1, s.hidden}), {s.hidden}) {
        const float k = 1.0f / std::sqrt(static_cast<float>(s.hidden));
        for (Parameter* p : {&weight_ih, &bias_ih}) fill_uniform(p->value, rng, -k, k);
        fill_uniform(weight_hh.value, rng, 0.0f, 1.0f);
    }

    std::size_t input_size() const override { return weight_ih.value.shape()[1]; }
    std::size_t hidden_size() const override { return weight_ih.value.shape()[0]; }

    Window project(Ctx& c, Var x) override { return {affine(x, c.tape.param(weight_ih), c.tape.param(bias_ih))}; }

    StepOut step(const Step& at, Var x_t, const State& s) override {
        return State{relu(x_t + at.tape().param(weight_hh) * s[0])};
    }

    void collect(std::vector<Parameter*>& out) override { out.insert(out.end(), {&weight_ih, &bias_ih, &weight_hh}); }

    Parameter weight_ih, bias_ih, weight_hh;  // W (H x in), b (H), u (H)
};

}  // namespace zoo
