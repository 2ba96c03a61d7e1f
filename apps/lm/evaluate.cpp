#include <xtgrad/apps/lm/evaluate.hpp>

#include <fmt/core.h>

#include <xtgrad/apps/lm/distributed.hpp>
#include <xtgrad/lib/error.hpp>

namespace xtgrad {

namespace {
// The sum over windows of n * (mean loss of the window), and the rows n seen.
std::pair<double, std::size_t> evaluate_streams(RNNLM& model, const Batched& data, std::size_t bptt,
                                                std::size_t max_batches, Precision precision) {
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
    return {total, rows};
}
}  // namespace

double evaluate(RNNLM& model, const Batched& data, std::size_t bptt, std::size_t max_batches, Comm* comm,
                Precision precision) {
    if (data.steps < 2)
        throw ConfigError(fmt::format("evaluation split has {} steps of batch {}: too short", data.steps, data.batch));
    if (!comm || comm->size() == 1) {
        const auto [total, rows] = evaluate_streams(model, data, bptt, max_batches, precision);
        return total / static_cast<double>(rows);
    }
    if (data.batch < comm->size())
        throw ConfigError(fmt::format("the evaluation batch of {} streams is smaller than the {} processes: give each "
                                      "one at least a stream (--eval-batch-size)", data.batch, comm->size()));
    const Share share = share_of(data.batch, *comm);
    const auto [total, rows] = evaluate_streams(model, take_streams(data, share), bptt, max_batches, precision);
    double weighted = total * static_cast<double>(share.count) / static_cast<double>(data.batch);
    comm->sum(&weighted, 1);
    return weighted / static_cast<double>(rows);  // every share has the same windows
}

}  // namespace xtgrad
