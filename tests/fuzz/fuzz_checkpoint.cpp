// Fuzz target: the language-model library's load path, metadata included. The bytes are read as a safetensors
// file and loaded as `eval`, `generate` and `train --resume` load one: the model (its settings checked, built under
// the budget of the file's values, its weights loaded; a plain state dict with the vocabulary of a small corpus),
// then for a resume point the recorded options, the optimiser, the schedule and the hidden state. What loads is
// used: a forward pass and a few sampled tokens, every id inside the vocabulary. Anything else is an xtgrad::Error.
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <string>

#include <xtgrad/lm.hpp>
#include <xtgrad/lib/error.hpp>

#include "refused.hpp"
#include <xtgrad/lib/safetensors.hpp>

namespace {

using namespace xtgrad;

// The vocabulary a plain state dict is given (as `--data` would): the seeds' 12 words.
const Corpus& small_corpus() {
    static const Corpus c = [] {
        Corpus k;
        k.level = "word";
        k.vocab = Vocab::from_tokens({"<eos>", "the", "cat", "sat", "on", "a", "mat", "dog", "ran", "far", "away", "<unk>"});
        return k;
    }();
    return c;
}

void use(LoadedModel& m, const RecurrentState* hidden, std::size_t batch) {
    const std::size_t V = m.vocab.size();
    Ids in(batch * 2), tg(batch * 2);
    for (std::size_t i = 0; i < in.size(); ++i) in[i] = static_cast<std::int32_t>(i % V), tg[i] = static_cast<std::int32_t>((i + 1) % V);
    Tape t;
    t.set_grad_enabled(false);
    Rng unused(0);
    Ctx c{t, unused, false};
    const LMFeatures f = m.model->features(c, in, batch, hidden ? *hidden : m.model->zero_state(batch));
    m.model->loss(c, f.y, tg);
    Sampler s(*m.model, m.vocab, m.level, 1, 1.0f, 0);
    for (int k = 0; k < 3; ++k) {
        const std::int32_t id = s.sample();
        if (id < 0 || static_cast<std::size_t>(id) >= V) std::abort();
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    static const Registry registry = builtin_registry();
    try {
        StateDict sd = decode_safetensors(std::string(reinterpret_cast<const char*>(data), size), "fuzz.safetensors");
        const bool resume = sd.has_meta("resume");
        StateDict copy = resume ? sd : StateDict();
        LoadedModel m = load_model(std::move(sd), "fuzz.safetensors", registry, &small_corpus(), "");
        if (!resume) {
            use(m, nullptr, 2);
            return 0;
        }
        // as Trainer::start continues a run
        const ResumePoint rp = read_resume_point(std::move(copy), "fuzz.safetensors");
        const TrainOptions& o = rp.options;
        std::vector<Parameter*> params = m.model->parameters();
        std::unique_ptr<Optimizer> opt = make_optimizer(o.optimizer, params, o.lr, o.momentum, o.weight_decay);
        std::unique_ptr<LRSchedule> schedule;
        if (o.lr_schedule == "cosine") schedule = std::make_unique<CosineProgressLR>(o.lr);
        else schedule = std::make_unique<PlateauLR>(o.lr, 0.25, opt->holds_lr() ? std::numeric_limits<std::size_t>::max() : 0);
        opt->load_state(rp.sd);
        schedule->load_state(rp.sd, "schedule.");
        const RecurrentState hidden = read_hidden_state(rp.sd, *m.model, o.batch_size, "fuzz.safetensors");
        use(m, &hidden, o.batch_size);
    } catch (const Error& e) {
        refused(e);
    }
    return 0;
}
