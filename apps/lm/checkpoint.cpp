#include <xtgrad/apps/lm/checkpoint.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cmath>

#include <fmt/core.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <xtgrad/lib/error.hpp>
#include <xtgrad/lib/safetensors.hpp>

namespace xtgrad {

namespace {
constexpr const char* kFormat = "xtgrad-lm/1";

bool exists(const std::string& p) {
    struct stat st {};
    return ::stat(p.c_str(), &st) == 0;
}

std::string stem(const std::string& save) {
    const std::string ext = ".safetensors";
    if (save.size() > ext.size() && save.compare(save.size() - ext.size(), ext.size(), ext) == 0)
        return save.substr(0, save.size() - ext.size());
    return save;
}

void put_model(StateDict& sd, const RNNLM& model, const Vocab& vocab, const std::string& level, const std::string& run_id) {
    model.save_weights(sd);
    save_config(model.config, sd);
    sd.metadata["format"] = kFormat;
    sd.metadata["level"] = level;
    sd.metadata["vocab"] = nlohmann::json(vocab.tokens()).dump();
    if (!run_id.empty()) sd.metadata["run_id"] = run_id;
}

Vocab read_vocab(const MetaReader& m) {
    try {
        return Vocab::from_tokens(m.strings("vocab", Limits::vocab));
    } catch (const ConfigError& e) {
        m.fail("vocab", e.what());
    }
}
}  // namespace

std::string new_run_id() {
    const auto t = static_cast<std::uint64_t>(std::chrono::system_clock::now().time_since_epoch().count());
    Rng r(t ^ (static_cast<std::uint64_t>(::getpid()) << 32));
    return fmt::format("{:016x}", r.next_u64());
}

std::string save_path_of_resume(const std::string& resume) {
    const std::string ext = ".resume.safetensors";
    if (resume.size() > ext.size() && resume.compare(resume.size() - ext.size(), ext.size(), ext) == 0)
        return resume.substr(0, resume.size() - ext.size()) + ".safetensors";
    return "";
}

void save_model(const std::string& path, const RNNLM& model, const Vocab& vocab, const std::string& level,
                const std::string& run_id, const std::string& options_json) {
    StateDict sd;
    put_model(sd, model, vocab, level, run_id);
    if (!options_json.empty()) sd.metadata["options"] = options_json;
    save_safetensors(path, sd);
}

LoadedModel load_model(const std::string& path, const Registry& registry, const Corpus* vocab_from,
                       const std::string& cell_hint) {
    return load_model(load_safetensors(path), path, registry, vocab_from, cell_hint);
}

LoadedModel load_model(StateDict sd, const std::string& path, const Registry& registry, const Corpus* vocab_from,
                       const std::string& cell_hint) {
    LoadedModel m;
    m.sd = std::move(sd);
    const MetaReader meta(m.sd, path);
    LMConfig config;
    if (meta.has("format")) {
        if (meta.text("format", 64) != kFormat)
            meta.fail("format", fmt::format("= '{}' is not a format this program reads ({})", meta.text("format", 64), kFormat));
        config = load_config(m.sd, path);
        if (!registry.knows(config.cell))
            throw FileError(fmt::format("{}: the model was trained with the cell '{}', which {} does not know (it knows "
                                        "{}); use the program that registered '{}'", path, config.cell, registry.program,
                                        fmt::join(registry.names(), ", "), config.cell));
        if (!cell_hint.empty() && cell_hint != config.cell)
            throw FileError(fmt::format("{}: the checkpoint holds a {} model, but --model {} was given", path, config.cell,
                                        cell_hint));
        m.vocab = read_vocab(meta);
        m.level = meta.text("level", 8);
        if (m.level != "word" && m.level != "char") meta.fail("level", fmt::format("= '{}' is not word or char", m.level));
        if (m.vocab.size() != config.vocab)
            throw FileError(fmt::format("{}: vocabulary has {} tokens but the model {}", path, m.vocab.size(), config.vocab));
    } else {
        m.from_pytorch = true;
        config = infer_pytorch_config(m.sd, cell_hint, path);
        registry.check(config.cell);
        if (!vocab_from)
            throw FileError(fmt::format("{}: a plain state dict without xtgrad metadata: pass --data DIR to rebuild its "
                                        "vocabulary", path));
        m.vocab = vocab_from->vocab;
        m.level = vocab_from->level;
        if (m.vocab.size() != config.vocab)
            throw FileError(fmt::format("{}: encoder.weight has {} rows but the vocabulary of the data has {} tokens", path,
                                        config.vocab, m.vocab.size()));
    }
    // Built under the budget of what the file holds: its weights must fill every parameter, so a file whose
    // settings claim a larger model is refused at the first parameter too many, before its memory is touched.
    std::size_t held = 0;
    for (const auto& kv : m.sd.tensors) held += kv.second.value.size();
    Rng rng(0);
    try {
        const ParameterBudget budget(held, fmt::format("{}: the {} model its settings describe does not fit the {} "
                                                       "values the file holds", path, config.describe(), held));
        m.model = registry.build(config, rng);
    } catch (const std::bad_alloc&) {
        throw FileError(fmt::format("{}: the {} model its settings describe does not fit in memory (and the file holds "
                                    "only {} values)", path, config.describe(), held));
    }
    m.model->load_weights(m.sd, path);
    return m;
}

ResumePoint read_resume_point(const std::string& path) { return read_resume_point(load_safetensors(path), path); }

ResumePoint read_resume_point(StateDict sd, const std::string& path) {
    ResumePoint r;
    r.sd = std::move(sd);
    const MetaReader m(r.sd, path);
    if (!m.has("resume"))
        throw FileError(fmt::format("{}: holds weights only (a --save file?), not a training state to resume", path));
    r.options = train_options_from_json(m.text("options"), path);
    TrainProgress& p = r.progress;
    p.epoch = m.count("epoch", 1, 1u << 30);
    p.batch = m.count("batch", 0, 1ull << 40);
    p.position = m.count("position", 0, 1ull << 40);
    p.total_batches = m.count("total_batches", 0, 1ull << 50);
    for (int k = 0; k < 4; ++k) p.rng[k] = m.count(fmt::format("rng.{}", k), 0, ~0ull);
    p.run_id = m.text("run_id", 64);
    p.best_written = m.flag("best_written");
    p.best_val = m.has("best_val") ? m.real("best_val", 0.0, 1e300) : std::numeric_limits<double>::infinity();
    p.elapsed = m.real("elapsed", 0.0, 1e12);
    return r;
}

RecurrentState read_hidden_state(const StateDict& sd, const RNNLM& model, std::size_t batch, const std::string& path) {
    // the file's tensors checked first: the state is allocated only at the size they show
    const std::vector<StatePart>& parts = model.rnn.state_parts();
    const std::size_t cells = model.rnn.num_layers() * model.rnn.directions();
    for (std::size_t k = 0; k < cells; ++k)
        for (const StatePart& part : parts) {
            const std::string name = fmt::format("state.{}.{}", part.name, k);
            const Array& v = sd.get(name, path).value;
            if (v.shape()[0] != batch || v.shape()[1] != part.width)
                throw FileError(fmt::format("{}: tensor '{}' has shape [{}, {}], expected [{}, {}] (batch {} x width {})",
                                            path, name, v.shape()[0], v.shape()[1], batch, part.width, batch, part.width));
        }
    RecurrentState h = model.zero_state(batch);
    for (std::size_t k = 0; k < h.cells.size(); ++k)
        for (std::size_t p = 0; p < parts.size(); ++p)
            sd.load_into(fmt::format("state.{}.{}", parts[p].name, k), h.cells[k][p], path);
    return h;
}

Checkpointer::Checkpointer(const std::string& save)
    : best_(save), resume_(stem(save) + ".resume.safetensors"), metrics_(stem(save) + ".metrics.jsonl") {}

void Checkpointer::check_owned(const std::string& run_id) const {
    for (const std::string& f : {best_, resume_}) {
        if (!exists(f)) continue;
        std::string owner;
        try {
            const StateDict sd = load_safetensors(f);
            if (sd.has_meta("run_id")) owner = sd.metadata.at("run_id");
        } catch (const Error&) {
        }
        if (run_id.empty() || owner != run_id)
            throw ConfigError(fmt::format("{} exists and belongs to {}: it would be overwritten. Pass --save with "
                                          "another name, or remove the file", f,
                                          owner.empty() ? "no run of this program" : "another run (" + owner + ")"));
    }
    if (run_id.empty() && exists(metrics_))
        throw ConfigError(fmt::format("{} exists (another run's metrics): pass --save with another name, or remove it",
                                      metrics_));
}

void Checkpointer::save_best(const RNNLM& model, const Vocab& vocab, const std::string& level, const std::string& run_id,
                             const std::string& options_json) const {
    save_model(best_, model, vocab, level, run_id, options_json);
}

void Checkpointer::save_resume(const RNNLM& model, const Vocab& vocab, const std::string& level,
                               const TrainOptions& options, const Optimizer& opt, const LRSchedule& schedule,
                               const TrainProgress& p, const RecurrentState& hidden) const {
    StateDict sd;
    put_model(sd, model, vocab, level, p.run_id);
    sd.metadata["resume"] = "1";
    sd.metadata["options"] = train_options_to_json(options);
    sd.put_int("epoch", static_cast<std::int64_t>(p.epoch));
    sd.put_int("batch", static_cast<std::int64_t>(p.batch));
    sd.put_int("position", static_cast<std::int64_t>(p.position));
    sd.put_int("total_batches", static_cast<std::int64_t>(p.total_batches));
    sd.put_int("best_written", p.best_written);
    if (std::isfinite(p.best_val)) sd.put_double("best_val", p.best_val);
    sd.put_double("elapsed", p.elapsed);
    for (int k = 0; k < 4; ++k) sd.metadata[fmt::format("rng.{}", k)] = fmt::format("{}", p.rng[k]);
    opt.save_state(sd);
    schedule.save_state(sd, "schedule.");
    const std::vector<StatePart>& parts = model.rnn.state_parts();
    for (std::size_t k = 0; k < hidden.cells.size(); ++k)
        for (std::size_t q = 0; q < parts.size(); ++q)
            sd.put(fmt::format("state.{}.{}", parts[q].name, k), hidden.cells[k][q]);
    save_safetensors(resume_, sd);
}

std::vector<std::string> Checkpointer::existing() const {
    std::vector<std::string> v;
    for (const std::string& f : {best_, resume_})
        if (exists(f)) v.push_back(f);
    return v;
}

}  // namespace xtgrad
