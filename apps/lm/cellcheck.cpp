#include <xtgrad/apps/lm/cellcheck.hpp>

#include <xtgrad/layers/recurrent.hpp>
#include <xtgrad/tape/ops.hpp>

namespace xtgrad {

GradcheckReport check_cell(const CellFactory& make, const CellCheckOptions& o) {
    Rng rng(o.seed);
    Recurrent rnn("rnn", make, o.input, o.hidden, o.layers, 0.0f, o.bidirectional, rng, 0.0f, o.options);
    Parameter x("x", Array({o.steps * o.batch, o.input}));
    fill_uniform(x.value, rng, -1.0f, 1.0f);
    RecurrentState init = rnn.zero_state(o.batch);  // a non-zero carried state: the first step's weights matter too
    for (auto& cell : init.cells)
        for (Array& part : cell) fill_uniform(part, rng, -0.5f, 0.5f);
    Lengths lengths(o.batch, o.steps);
    if (o.padded && o.batch > 1) lengths[1] = o.steps - 1;
    Rng unused(0);
    Tape tape;
    auto loss = [&](Tape& t) {
        Ctx c{t, unused, false};
        const RecurrentOutput out = rnn(c, t.param(x), o.batch, init, o.padded ? &lengths : nullptr);
        Var l = random_projection(out.y, o.seed + 1);
        std::uint64_t k = o.seed + 2;
        for (const State& s : *out.final)
            for (const Var& part : s) l = l + random_projection(part, k++);
        return l;
    };
    std::vector<Parameter*> params = rnn.parameters();
    params.push_back(&x);
    return gradcheck(tape, loss, params, o.check);
}

}  // namespace xtgrad
