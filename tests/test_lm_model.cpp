// The language model of apps/lm as a whole: AWD-LSTM's penalties (AR, TAR), weight drop and the adaptive input tied
// to the adaptive softmax, gradient-checked through the whole model over a window; the penalties against their
// closed form.
#include <doctest/doctest.h>

#include <fmt/core.h>

#include <xtgrad/apps/lm/model.hpp>
#include <xtgrad/apps/lm/registry.hpp>
#include <xtgrad/tape/gradcheck.hpp>

using namespace xtgrad;

namespace {

constexpr std::size_t kVocab = 15, kBatch = 2, kSteps = 3;

LMConfig small_config() {
    LMConfig c;
    c.vocab = kVocab;
    c.emsize = c.nhid = 5;
    c.nlayers = 2;
    c.dropout = 0.0f;  // deterministic; weight drop is drawn from the reseeded generator below
    return c;
}

// Time-major ids and next-token targets of one window.
const Ids kIds = {3, 14, 0, 7, 9, 9};
const Ids kTargets = {14, 0, 7, 9, 9, 2};

// The training loss of a window, as the trainer forms it: cross-entropy plus the model's penalty.
GradcheckReport check_model(RNNLM& m, const RecurrentState& init, std::uint64_t seed) {
    Rng drop;
    Tape tape;
    auto loss = [&](Tape& t) {
        drop.reseed(seed);
        Ctx c{t, drop, true};
        const LMFeatures f = m.features(c, kIds, kBatch, init);
        Var l = m.loss(c, f.y, kTargets, Reduction::mean);
        return f.penalty.tape ? l + f.penalty : l;
    };
    return gradcheck(tape, loss, m.parameters());
}

RecurrentState some_state(const RNNLM& m, std::uint64_t seed) {
    Rng rng(seed);
    RecurrentState s = m.zero_state(kBatch);
    for (auto& cell : s.cells)
        for (Array& part : cell) fill_uniform(part, rng, -0.5f, 0.5f);
    return s;
}

}  // namespace

TEST_CASE("AR and TAR: the penalty is alpha mean(y^2) + beta mean((y_t+1 - y_t)^2), and its gradient checks") {
    LMConfig c = small_config();
    c.alpha = 2.0f;
    c.beta = 1.5f;
    Rng rng(5);
    RNNLM m(c, builtin_registry().cell("LSTM"), rng);
    const RecurrentState init = some_state(m, 6);
    {
        Tape t;
        Rng drop(1);
        Ctx ctx{t, drop, true};
        const LMFeatures f = m.features(ctx, kIds, kBatch, init);
        REQUIRE(f.penalty.tape != nullptr);
        const Array& y = f.y.value();
        double ar = 0.0, tar = 0.0;
        for (std::size_t r = 0; r < y.shape()[0]; ++r)
            for (std::size_t k = 0; k < y.shape()[1]; ++k) {
                ar += static_cast<double>(y(r, k)) * y(r, k);
                if (r + kBatch < y.shape()[0]) {
                    const double d = static_cast<double>(y(r + kBatch, k)) - y(r, k);
                    tar += d * d;
                }
            }
        ar /= static_cast<double>(y.size());
        tar /= static_cast<double>((kSteps - 1) * kBatch * y.shape()[1]);
        CHECK(f.penalty.value()(0, 0) == doctest::Approx(c.alpha * ar + c.beta * tar).epsilon(1e-5));
        Ctx eval{t, drop, false};  // no penalty outside training
        CHECK(m.features(eval, kIds, kBatch, init).penalty.tape == nullptr);
    }
    const GradcheckReport r = check_model(m, init, 7);
    fmt::print("{:<36} {}\n", "LSTM LM with AR and TAR", r.summary());
    CHECK(r.ok);
}

TEST_CASE("weight drop and the tied adaptive input: the whole model's gradient checks") {
    LMConfig c = small_config();
    c.weight_drop = 0.3f;
    c.tied = true;
    c.cutoffs = {4, 9};
    c.div_value = 2.0f;
    Rng rng(8);
    for (std::size_t id = 0; id < kVocab; ++id) c.order.push_back(static_cast<std::int32_t>((id * 4) % kVocab));
    RNNLM m(c, builtin_registry().cell("LSTM"), rng);
    CHECK(m.adaptive_input());
    CHECK(m.encoder.weight.size() == 0);
    const Array table = m.embedding_table();
    CHECK(table.shape()[0] == kVocab);
    CHECK(table.shape()[1] == c.emsize);
    const GradcheckReport r = check_model(m, some_state(m, 9), 10);
    fmt::print("{:<36} {}\n", "LSTM LM, weight drop, adaptive in/out", r.summary());
    CHECK(r.ok);
}
