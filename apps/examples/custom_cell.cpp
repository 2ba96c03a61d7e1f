// A user's language-model program: the Minimal Gated Unit (Zhou et al., 2016) written with public tape ops and
// registered as --model MGU, with the whole command line of xtgrad-lm (train, eval, generate, gradcheck):
//   c++ -std=c++17 -O2 custom_cell.cpp $(pkg-config --cflags --libs xtgrad-lm) -o mylm
//   ./mylm gradcheck --model MGU && ./mylm train --model MGU --data DIR --epochs 1
#include <cmath>

#include <xtgrad/lm.hpp>

using namespace xtgrad;

//   f  = sigmoid(x W_f^T + b_f + h U_f^T)
//   h~ = tanh(x W_h^T + b_h + (f * h) U_h^T)
//   h' = (1 - f) * h + f * h~
class MGUCell : public Cell {
public:
    MGUCell(const CellSpec& s, Rng& rng)
        : W(s.name("weight_ih"), Array({2 * s.hidden, s.input})),  // [W_f; W_h]
          b(s.name("bias_ih"), Array({1, 2 * s.hidden}), {2 * s.hidden}),
          Uf(s.name("weight_hf"), Array({s.hidden, s.hidden})),
          Uh(s.name("weight_hh"), Array({s.hidden, s.hidden})) {
        const float k = 1.0f / std::sqrt(static_cast<float>(s.hidden));
        for (Parameter* p : {&W, &b, &Uf, &Uh}) fill_uniform(p->value, rng, -k, k);
    }

    std::size_t input_size() const override { return W.value.shape()[1]; }
    std::size_t hidden_size() const override { return Uh.value.shape()[0]; }

    // Both input projections of the whole window in one matrix product: (T*B x 2H).
    Window project(Ctx& c, Var x) override { return {affine(x, c.tape.param(W), c.tape.param(b))}; }

    StepOut step(const Step& at, Var x_t, const State& s) override {
        Tape& t = at.tape();
        const std::size_t H = hidden_size();
        Var h = s[0];
        Var f = sigmoid(cols(x_t, 0, H) + matmul_t(h, t.param(Uf)));
        Var h_tilde = tanh(cols(x_t, H, 2 * H) + matmul_t(f * h, t.param(Uh)));
        at.probe("f", f);
        return State{h + f * (h_tilde - h)};  // = (1 - f) * h + f * h~
    }

    void collect(std::vector<Parameter*>& out) override { out.insert(out.end(), {&W, &b, &Uf, &Uh}); }

    Parameter W, b, Uf, Uh;
};

int main(int argc, char** argv) {
    Registry models = builtin_registry();
    models.program = "mylm";
    models.add_cell("MGU", cell_factory<MGUCell>(), "Minimal Gated Unit (Zhou et al., 2016)");
    return run_lm(argc, argv, models);
}
