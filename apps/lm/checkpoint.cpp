#include <xtgrad/apps/lm/checkpoint.hpp>

#include <cerrno>
#include <cstdlib>

#include <fmt/core.h>

#include <xtgrad/lib/error.hpp>
#include <xtgrad/lib/json.hpp>
#include <xtgrad/lib/safetensors.hpp>

namespace xtgrad {

namespace {
constexpr const char* kFormat = "xtgrad-lm/1";

std::uint64_t get_u64(const StateDict& sd, const std::string& key, const std::string& path) {
    const std::string& s = sd.get_string(key, path);
    char* end = nullptr;
    errno = 0;
    const unsigned long long v = std::strtoull(s.c_str(), &end, 10);
    if (s.empty() || *end != '\0' || errno == ERANGE || s[0] == '-')
        throw FileError(fmt::format("{}: metadata '{}' = '{}' is not an unsigned integer", path, key, s));
    return v;
}
}  // namespace

void save_checkpoint(const std::string& path, const RNNLM& model, const Vocab& vocab, const std::string& level,
                     const Optimizer* opt, const PlateauLR* plateau, const TrainProgress* progress,
                     const RecurrentState* hidden) {
    StateDict sd;
    model.save_weights(sd);
    model.config.save(sd);
    sd.metadata["format"] = kFormat;
    sd.metadata["level"] = level;
    sd.metadata["vocab"] = json::encode_strings(vocab.tokens());
    if (progress) {
        sd.metadata["resume"] = "1";
        sd.put_int("epoch", static_cast<std::int64_t>(progress->epoch));
        sd.put_int("batch", static_cast<std::int64_t>(progress->batch));
        sd.put_int("total_batches", static_cast<std::int64_t>(progress->total_batches));
        sd.metadata["seed"] = fmt::format("{}", progress->seed);
        for (int k = 0; k < 4; ++k) sd.metadata[fmt::format("rng.{}", k)] = fmt::format("{}", progress->rng[k]);
        if (opt) opt->save_state(sd);
        if (plateau) plateau->save_state(sd);
        if (hidden)
            for (std::size_t k = 0; k < hidden->cells.size(); ++k) {
                sd.put(fmt::format("state.h.{}", k), hidden->cells[k].h);
                if (hidden->cells[k].c.size()) sd.put(fmt::format("state.c.{}", k), hidden->cells[k].c);
            }
    }
    save_safetensors(path, sd);
}

LoadedModel load_model(const std::string& path, const Corpus* vocab_from, const std::string& model_hint) {
    LoadedModel m;
    m.sd = load_safetensors(path);
    LMConfig config;
    if (m.sd.has_meta("format")) {
        if (m.sd.metadata.at("format") != kFormat)
            throw FileError(fmt::format("{}: unknown checkpoint format '{}' (this program writes {})", path,
                                        m.sd.metadata.at("format"), kFormat));
        config = LMConfig::load(m.sd, path);
        if (!model_hint.empty() && model_hint != config.model)
            throw FileError(fmt::format("{}: the checkpoint holds a {} model, but --model {} was given", path, config.model,
                                        model_hint));
        m.vocab = Vocab::from_tokens(json::decode_strings(m.sd.get_string("vocab", path), path + ": metadata 'vocab'"));
        m.level = m.sd.get_string("level", path);
        if (m.vocab.size() != config.vocab)
            throw FileError(fmt::format("{}: vocabulary has {} tokens but the model {}", path, m.vocab.size(), config.vocab));
    } else {
        m.from_pytorch = true;
        config = LMConfig::infer(m.sd, model_hint, path);
        if (!vocab_from)
            throw FileError(fmt::format("{}: a plain state dict without xtgrad metadata: pass --data DIR to rebuild its "
                                        "vocabulary", path));
        m.vocab = vocab_from->vocab;
        m.level = vocab_from->level;
        if (m.vocab.size() != config.vocab)
            throw FileError(fmt::format("{}: encoder.weight has {} rows but the vocabulary of the data has {} tokens", path,
                                        config.vocab, m.vocab.size()));
    }
    Rng rng(0);
    m.model = std::make_unique<RNNLM>(config, rng);
    m.model->load_weights(m.sd, path);
    return m;
}

ResumeState load_resume_state(const StateDict& sd, const RNNLM& model, std::size_t batch, const std::string& path) {
    if (!sd.has_meta("resume"))
        throw FileError(fmt::format("{}: holds weights only (a --save file?), not a training state to resume", path));
    ResumeState r;
    r.sd = sd;
    TrainProgress& p = r.progress;
    p.epoch = static_cast<std::size_t>(sd.get_int("epoch", path));
    p.batch = static_cast<std::size_t>(sd.get_int("batch", path));
    p.total_batches = static_cast<std::size_t>(sd.get_int("total_batches", path));
    p.seed = get_u64(sd, "seed", path);
    for (int k = 0; k < 4; ++k) p.rng[k] = get_u64(sd, fmt::format("rng.{}", k), path);
    r.optimizer = sd.get_string("optim.name", path);
    r.hidden = model.rnn.zero_state(batch);
    for (std::size_t k = 0; k < r.hidden.cells.size(); ++k) {
        sd.load_into(fmt::format("state.h.{}", k), r.hidden.cells[k].h, path);
        if (r.hidden.cells[k].c.size()) sd.load_into(fmt::format("state.c.{}", k), r.hidden.cells[k].c, path);
    }
    return r;
}

}  // namespace xtgrad
