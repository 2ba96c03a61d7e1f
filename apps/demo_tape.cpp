// A tiny demo of the tape: a two-layer tanh network fits y = sin(3x) on [-1, 1] with plain gradient descent,
// printing its loss as it goes down. Everything it uses is public: Parameter, Tape, ops, backward.
#include <cmath>

#include <fmt/core.h>

#include <xtgrad/lib/rng.hpp>
#include <xtgrad/tape/ops.hpp>

using namespace xtgrad;

int main() {
    const std::size_t N = 64, H = 32;
    Rng rng(1111);
    Parameter W1("W1", Array({H, 1})), b1("b1", Array({1, H}, 0.0f)), W2("W2", Array({1, H})), b2("b2", Array({1, 1}, 0.0f));
    fill_uniform(W1.value, rng, -1.0f, 1.0f);
    fill_uniform(W2.value, rng, -0.2f, 0.2f);

    Array x({N, 1}), y({N, 1});
    for (std::size_t i = 0; i < N; ++i) {
        x(i, 0) = -1.0f + 2.0f * static_cast<float>(i) / (N - 1);
        y(i, 0) = std::sin(3.0f * x(i, 0));
    }

    Tape tape;
    for (int step = 0; step <= 2000; ++step) {
        tape.clear();
        Var h = tanh(affine(tape.constant(x), tape.param(W1), tape.param(b1)));
        Var diff = affine(h, tape.param(W2), tape.param(b2)) - tape.constant(y);
        Var loss = mean(diff * diff);
        tape.backward(loss);
        for (Parameter* p : {&W1, &b1, &W2, &b2}) {
            for (std::size_t k = 0; k < p->size(); ++k) p->value.data()[k] -= 0.2f * p->grad.data()[k];
            p->zero_grad();
        }
        if (step % 250 == 0) fmt::print("step {:5d}  mse {:.6f}\n", step, loss.value()(0, 0));
    }
    return 0;
}
