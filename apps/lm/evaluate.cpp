#include <xtgrad/apps/lm/evaluate.hpp>

#include <fmt/core.h>

#include <xtgrad/lib/error.hpp>

namespace xtgrad {

double evaluate(RNNLM& model, const Batched& data, std::size_t bptt, std::size_t max_batches,
                Precision precision) {
    if (data.steps < 2)
        throw ConfigError(fmt::format("evaluation split has {} steps of batch {}: too short", data.steps, data.batch));
    Tape tape;
    tape.set_precision(precision);
    NoGrad ng(tape);
    Rng unused(0);
    Ctx c{tape, unused, false};
    RecurrentState hidden = model.zero_state(data.batch);
    Ids in, tg;
    double total = 0.0;
    std::size_t rows = 0, nb = 0;
    for (std::size_t i = 0; i + 1 < data.steps; i += bptt, ++nb) {
        if (max_batches && nb >= max_batches) break;
        const std::size_t n = get_batch(data, i, bptt, in, tg);
        tape.clear();
        const RecurrentOutput f = model.features(c, in, data.batch, hidden);
        total += static_cast<double>(n) * model.loss(c, f.y, tg).value()(0, 0);
        hidden.assign(f);
        rows += n;
    }
    return total / static_cast<double>(rows);
}

}  // namespace xtgrad
