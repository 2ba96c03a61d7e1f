// An LSTM attending over its last k hidden states: the memory is a window of the previous states, as in Daniluk,
// Rocktaschel, Welbl & Riedel 2017 ("Frustratingly short attention spans in neural language modeling"); the score,
// weights and output are Luong, Pham & Manning 2015's ("Effective approaches to attention-based neural machine
// translation", eq. 8 "general", eq. 7, eq. 5):
//   (h, c) = LSTM(x, h_prev, c_prev)                 PyTorch's LSTM (the built-in cell)
//   a      = softmax_j( (h W_a^T) . m_j )            m_1 .. m_k: the previous k states in memory, oldest first
//   out    = tanh([sum_j a_j m_j, h] W_c^T)          what the step emits: the next layer's (or decoder's) input
//   memory' = [m_2 .. m_k, h]
// The state is h, c and the memory (k*H wide), so it is carried across windows, kept on padded steps and saved in
// resume points like h and c. `--cell-option k=N` sets k (default 8); the weights a are probed as "attn".
// W_a (H x H) and W_c (H x 2H) are drawn as nn.Linear's without bias, U(-1/sqrt(in), 1/sqrt(in)).
#pragma once

#include <cmath>
#include <string>

#include <xtgrad/xtgrad.hpp>

namespace zoo {
using namespace xtgrad;

class AttnLSTMCell : public LSTMCell {
public:
    AttnLSTMCell(const CellSpec& s, Rng& rng)
        : LSTMCell(s, rng), k(window(s)), W_a(s.name("weight_attn"), Array({s.hidden, s.hidden})),
          W_c(s.name("weight_out"), Array({s.hidden, 2 * s.hidden})) {
        fill_uniform(W_a.value, rng, -1.0f / std::sqrt(float(s.hidden)), 1.0f / std::sqrt(float(s.hidden)));
        fill_uniform(W_c.value, rng, -1.0f / std::sqrt(2.0f * s.hidden), 1.0f / std::sqrt(2.0f * s.hidden));
    }

    std::vector<StatePart> state_parts() const override {
        return {{"h", hidden_size()}, {"c", hidden_size()}, {"mem", k * hidden_size()}};
    }

    StepOut step(const Step& at, Var x_t, const State& s) override {
        Tape& t = at.tape();
        const std::size_t H = hidden_size();
        const State lstm = LSTMCell::step(at, x_t, State{s[0], s[1]}).state;
        Var h = lstm[0], mem = s[2];
        Var a = softmax(block_dot(matmul_t(h, t.param(W_a)), mem));  // (B x k)
        at.probe("attn", a);
        Var out = tanh(matmul_t(concat_cols({block_mix(a, mem), h}), t.param(W_c)));
        return {State{h, lstm[1], k == 1 ? h : concat_cols({cols(mem, H, k * H), h})}, out};
    }

    void collect(std::vector<Parameter*>& out) override {
        LSTMCell::collect(out);
        out.insert(out.end(), {&W_a, &W_c});
    }

    static std::size_t window(const CellSpec& s) {
        for (const auto& option : s.options.all())
            if (option.first != "k")
                throw ConfigError("cell option " + option.first + ": the attention LSTM has only k");
        const long k = s.options.get("k", 8L);
        if (k < 1 || k > 256) throw ConfigError("cell option k: the attention window must be 1 to 256 states, got " +
                                                std::to_string(k));
        return static_cast<std::size_t>(k);
    }

    std::size_t k;         // states attended over
    Parameter W_a, W_c;    // score (H x H) and output (H x 2H) weights
};

}  // namespace zoo
