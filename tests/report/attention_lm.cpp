// A user's language-model program with a cell of its own that attends over its past: the browser test trains it and
// makes a report with it, so the report's attention view is drawn from a real model through the probe API.
//
// ATTN: a tanh RNN that reads a context of its last K = 8 hidden states (docs/ops.md, "Attention over the last k
// states"): the memory m = [h_{t-K} ... h_{t-1}] is a state part, q = h_{t-1},
//   w = softmax(block_dot(q, m)),  ctx = block_mix(w, m),  h_t = tanh(x_t W^T + [h_{t-1}, ctx] U^T + b).
// It shows w to a report as the probe "attn": column j weighs the state after step t - K + j (docs/report.md).
#include <xtgrad/lm.hpp>

using namespace xtgrad;

namespace {

constexpr std::size_t K = 8;

class AttentionCell : public Cell {
public:
    AttentionCell(const CellSpec& spec, Rng& rng)
        : W(spec.name("weight_ih"), Array({spec.hidden, spec.input})),
          U(spec.name("weight_hh"), Array({spec.hidden, 2 * spec.hidden})),
          b(spec.name("bias"), Array({1, spec.hidden}, 0.0f)) {
        const float r = 1.0f / std::sqrt(static_cast<float>(spec.hidden));
        fill_uniform(W.value, rng, -r, r);
        fill_uniform(U.value, rng, -r, r);
    }
    std::size_t input_size() const override { return W.value.shape()[1]; }
    std::size_t hidden_size() const override { return W.value.shape()[0]; }
    std::vector<StatePart> state_parts() const override { return {{"h", hidden_size()}, {"m", K * hidden_size()}}; }
    Window project(Ctx& c, Var x) override { return {affine(x, c.tape.param(W), c.tape.param(b)), {}}; }
    StepOut step(const Step& at, Var x_t, const State& s) override {
        const std::size_t H = hidden_size();
        const Var w = softmax(block_dot(s[0], s[1]));  // (B x K)
        at.probe("attn", w);
        const Var context = block_mix(w, s[1]);        // (B x H)
        const Var h = tanh(x_t + matmul_t(concat_cols({s[0], context}), at.tape().param(U)));
        return State{h, concat_cols({cols(s[1], H, K * H), h})};
    }
    void collect(std::vector<Parameter*>& out) override { out.insert(out.end(), {&W, &U, &b}); }

    Parameter W, U, b;
};

}  // namespace

int main(int argc, char** argv) {
    Registry models = builtin_registry();
    models.add_cell("ATTN", cell_factory<AttentionCell>(), "tanh RNN attending over its last 8 states");
    models.program = "attention_lm";
    return run_lm(argc, argv, models);
}
