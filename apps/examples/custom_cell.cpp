// Writing a new recurrent cell: the MGU of mgu_cell.hpp is gradient-checked, then trained as a character-level
// language model in place of the LSTM, then sampled.
//   ./build/apps/custom_cell [DATA (../shared/data/tinyshakespeare)] [BATCHES (300)]
#include <fmt/core.h>

#include <xtgrad/apps/examples/mgu_cell.hpp>
#include <xtgrad/apps/lm/generate.hpp>
#include <xtgrad/apps/lm/lm.hpp>
#include <xtgrad/layers/rnn_lm.hpp>
#include <xtgrad/optim/clip.hpp>
#include <xtgrad/optim/optimizer.hpp>
#include <xtgrad/tape/gradcheck.hpp>

using namespace xtgrad;

int main(int argc, char** argv) try {
    const std::string data = argc > 1 ? argv[1] : "../shared/data/tinyshakespeare";
    const std::size_t batches = argc > 2 ? std::stoul(argv[2]) : 300;
    const CellFactory mgu = [](const std::string& prefix, const std::string& suffix, std::size_t in, std::size_t H,
                               Rng& rng) { return std::unique_ptr<Cell>(new MGUCell(prefix, suffix, in, H, rng)); };

    // 1. Gradient check: two stacked MGU layers, 4 time steps, batch 2, against central differences.
    Rng rng(1);
    Recurrent small("mgu", mgu, 3, 4, 2, 0.0f, false, rng);
    Parameter x("x", Array({4 * 2, 3}));
    fill_uniform(x.value, rng, -1.0f, 1.0f);
    Tape tape;
    auto probe = [&](Tape& t) {
        RecurrentState s;  // zeros
        return random_projection(small(t.param(x), 2, s, rng, false), 7);
    };
    std::vector<Parameter*> checked = small.parameters();
    checked.push_back(&x);
    const GradcheckReport report = gradcheck(tape, probe, checked);
    fmt::print("gradcheck: {}\n", report.summary());
    if (!report.ok) return 1;

    // 2. Train: the character-level model of xtgrad-lm, with the new cell instead of the LSTM.
    const Corpus corpus = load_char_corpus(data);
    LMConfig config;
    config.vocab = corpus.vocab.size();
    config.emsize = 64;
    config.nhid = 256;
    config.nlayers = 1;
    config.dropout = 0.0f;
    RNNLM model(config, rng, mgu);
    Adam opt(model.parameters(), 3e-3);
    const std::size_t B = 32, T = 64;
    const Batched train = batchify(corpus.train, B);
    RecurrentState hidden;
    Ids in, tg;
    for (std::size_t b = 0, row = 0; b < batches; ++b, row += T) {
        if (row + T + 1 >= train.steps) row = 0, hidden = RecurrentState();
        get_batch(train, row, T, in, tg);
        tape.clear();
        Var loss = cross_entropy(model(tape, in, B, hidden, rng, true), tg);
        tape.backward(loss);
        clip_grad_norm(model.parameters(), 1.0);
        opt.step();
        opt.zero_grad();
        if (b % 50 == 0 || b + 1 == batches) fmt::print("batch {:4d}  loss {:.3f}\n", b, loss.value()(0, 0));
    }
    fmt::print("valid loss {:.3f} (nats per character)\n", evaluate(model, batchify(corpus.valid, 10), T, 50));

    // 3. Sample.
    Sampler sampler(model, corpus.vocab, "char", 7, 0.8f, 0);
    sampler.feed(encode_prompt("ROMEO:", corpus.vocab, "char"));
    fmt::print("ROMEO:{}\n", sampler.generate(300));
    return 0;
} catch (const std::exception& e) {
    fmt::print(stderr, "custom_cell: error: {}\n", e.what());
    return 1;
}
