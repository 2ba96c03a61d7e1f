#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <limits>
#include <ostream>

#include <fmt/core.h>
#include <fmt/ostream.h>

#include <xtgrad/apps/lm/lm.hpp>
#include <xtgrad/layers/loss.hpp>
#include <xtgrad/lib/error.hpp>
#include <xtgrad/lib/safetensors.hpp>
#include <xtgrad/optim/clip.hpp>
#include <xtgrad/tape/ops.hpp>

namespace xtgrad {

namespace {

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

bool is_dir(const std::string& p) {
    struct stat st {};
    return ::stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

std::string stem(const std::string& save) {
    const std::string ext = ".safetensors";
    if (save.size() > ext.size() && save.compare(save.size() - ext.size(), ext.size(), ext) == 0)
        return save.substr(0, save.size() - ext.size());
    return save;
}

// Appends JSON lines to the metrics log; each line is flushed so a crash loses nothing written.
class Metrics {
public:
    explicit Metrics(const std::string& path) : f_(path.empty() ? nullptr : std::fopen(path.c_str(), "a")) {
        if (!path.empty() && !f_) throw FileError(fmt::format("{}: cannot open the metrics log for appending", path));
    }
    ~Metrics() {
        if (f_) std::fclose(f_);
    }
    Metrics(const Metrics&) = delete;
    Metrics& operator=(const Metrics&) = delete;
    void line(const std::string& json) {
        if (!f_) return;
        std::fputs(json.c_str(), f_);
        std::fputc('\n', f_);
        std::fflush(f_);
    }

private:
    std::FILE* f_;
};

std::string jnum(double v) { return std::isfinite(v) ? fmt::format("{:.6g}", v) : "null"; }

}  // namespace

std::string resume_path(const std::string& save) { return stem(save) + ".resume.safetensors"; }
std::string metrics_path(const std::string& save) { return stem(save) + ".metrics.jsonl"; }

std::string find_data(const std::string& given, const std::string& name) {
    if (!given.empty()) return given;
    std::vector<std::string> candidates = {"../shared/data/" + name};
    char exe[4096];
    const ssize_t n = ::readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n > 0) {
        std::string dir(exe, static_cast<std::size_t>(n));
        dir = dir.substr(0, dir.find_last_of('/'));
        candidates.push_back(dir + "/../../../shared/data/" + name);  // build/apps/xtgrad-lm next to ../shared
    }
    for (const std::string& c : candidates)
        if (is_dir(c)) return c;
    throw ConfigError(fmt::format(
        "no --data given and {} was not found (looked in {}).\n"
        "Get WikiText-2 (the tokenised version with <unk>, as in the PyTorch word_language_model example: "
        "word_language_model/data/wikitext-2/{{train,valid,test}}.txt of the pytorch/examples repository) or Tiny "
        "Shakespeare (karpathy/char-rnn data/tinyshakespeare/input.txt) and pass --data DIR",
        name, fmt::join(candidates, ", ")));
}

Corpus load_corpus(const std::string& data, const std::string& level) {
    if (level == "word") return load_word_corpus(data);
    if (level == "char") return load_char_corpus(data);
    throw ConfigError(fmt::format("--level must be word or char, got '{}'", level));
}

double evaluate(RNNLM& model, const Batched& data, std::size_t bptt, std::size_t max_batches) {
    if (data.steps < 2) throw ConfigError(fmt::format("evaluation split has {} steps of batch {}: too short", data.steps, data.batch));
    Tape tape;
    NoGrad ng(tape);
    Rng unused(0);
    RecurrentState hidden = model.rnn.zero_state(data.batch);
    Ids in, tg;
    double total = 0.0;
    std::size_t rows = 0, nb = 0;
    for (std::size_t i = 0; i + 1 < data.steps; i += bptt, ++nb) {
        if (max_batches && nb >= max_batches) break;
        const std::size_t n = get_batch(data, i, bptt, in, tg);
        tape.clear();
        total += static_cast<double>(n) * model.loss(tape, in, tg, data.batch, hidden, unused, false).value()(0, 0);
        rows += n;
    }
    return total / static_cast<double>(rows);
}

TrainResult train(const TrainOptions& o, std::ostream& log) {
    auto say = [&](const std::string& s) {
        if (o.quiet) return;
        fmt::print(log, "{}\n", s);
        log.flush();  // progress shows up at once, also through a pipe or in a file
    };
    if (o.bptt == 0) throw ConfigError("--bptt must be positive");
    if (o.batch_size == 0) throw ConfigError("--batch-size must be positive");
    if (o.save.empty()) throw ConfigError("--save must name a file");
    if (is_dir(o.save)) throw ConfigError(fmt::format("--save {} is a directory; name a file", o.save));

    double t0 = now();
    const Corpus corpus = load_corpus(o.data, o.level);
    say(fmt::format("corpus {} ({} level): vocab {}, train {}, valid {}, test {} tokens (load {:.1f}s)", o.data, o.level,
                    corpus.vocab.size(), corpus.train.size(), corpus.valid.size(), corpus.test.size(), now() - t0));
    const Batched train_data = batchify(corpus.train, o.batch_size);
    const Batched val_data = batchify(corpus.valid, o.eval_batch_size);
    const Batched test_data = batchify(corpus.test, o.eval_batch_size);
    if (train_data.steps < 2)
        throw ConfigError(fmt::format("the training split ({} tokens) is too short for --batch-size {}", corpus.train.size(),
                                      o.batch_size));
    if (val_data.steps < 2 || test_data.steps < 2)
        throw ConfigError(fmt::format("the valid/test splits are too short for the evaluation batch size {}", o.eval_batch_size));

    LMConfig config = o.model;
    config.vocab = corpus.vocab.size();
    if (!config.cutoffs.empty()) config.order = frequency_order(corpus.train, config.vocab);
    Rng rng(o.seed);
    std::unique_ptr<RNNLM> model;
    StateDict resume_sd;
    if (!o.resume.empty()) {
        LoadedModel lm = load_model(o.resume, nullptr, "");
        if (lm.vocab.tokens() != corpus.vocab.tokens())
            throw FileError(fmt::format("{}: its vocabulary ({} tokens) is not the one of {} ({} tokens)", o.resume,
                                        lm.vocab.size(), o.data, corpus.vocab.size()));
        model = std::move(lm.model);
        resume_sd = std::move(lm.sd);
        config = model->config;
    } else {
        model = std::make_unique<RNNLM>(config, rng);
        if (!o.init.empty()) {
            model->load_weights(load_safetensors(o.init), o.init);
            say(fmt::format("initial weights from {}", o.init));
        }
    }
    std::vector<Parameter*> params = model->parameters();
    std::unique_ptr<Optimizer> opt = make_optimizer(o.optimizer, params, o.lr, o.momentum, o.weight_decay);
    // NT-ASGD (AWD-LSTM) keeps its learning rate and averages instead: the plateau rule only tracks the best loss.
    auto* ntasgd = dynamic_cast<NTASGD*>(opt.get());
    PlateauLR plateau(o.lr, 0.25, ntasgd ? std::numeric_limits<std::size_t>::max() : 0);
    TrainProgress prog;
    prog.seed = o.seed;
    RecurrentState hidden;
    if (!o.resume.empty()) {
        ResumeState rs = load_resume_state(resume_sd, *model, o.batch_size, o.resume);
        if (rs.optimizer != opt->name())
            throw FileError(fmt::format("{}: saved with --optimizer {}, not {}", o.resume, rs.optimizer, opt->name()));
        opt->load_state(resume_sd);
        plateau.load_state(resume_sd);
        prog = rs.progress;
        rng.set_state(prog.rng);
        hidden = rs.hidden;
        say(fmt::format("resumed from {}: epoch {}, batch {}, lr {}", o.resume, prog.epoch, prog.batch, plateau.lr()));
    }
    say(fmt::format("model {} | params {} | batch {} bptt {} | {} optimizer lr {} clip {}", config.describe(),
                    model->parameter_count(), o.batch_size, o.bptt, opt->name(), plateau.lr(), o.clip));

    Metrics metrics(metrics_path(o.save));
    const std::string resume_file = resume_path(o.save);
    auto save_resume = [&]() {
        prog.rng = rng.state();
        save_checkpoint(resume_file, *model, corpus.vocab, corpus.level, opt.get(), &plateau, &prog, &hidden);
    };
    StateDict best_weights;
    if (plateau.best() < std::numeric_limits<double>::infinity() && !o.resume.empty()) {
        // the best model so far is the --save file of the interrupted run, when it is there
        struct stat st {};
        if (::stat(o.save.c_str(), &st) == 0) best_weights = load_safetensors(o.save);
    }

    TrainResult res;
    Tape tape;
    Ids in, tg;
    const std::size_t per_epoch = (train_data.steps - 1 + o.bptt - 1) / o.bptt;
    const std::size_t nbatches = o.max_batches ? std::min(per_epoch, o.max_batches) : per_epoch;
    double timed = 0.0;
    std::size_t timed_tokens = 0;
    for (; prog.epoch <= o.epochs; ++prog.epoch, prog.batch = 0) {
        if (prog.batch == 0) hidden = model->rnn.zero_state(o.batch_size);
        const double epoch_start = now();
        double interval_start = epoch_start, interval_loss = 0.0, interval_norm = 0.0;
        std::size_t interval_batches = 0, interval_tokens = 0;
        for (std::size_t b = prog.batch; b < nbatches; ++b) {
            const std::size_t n = get_batch(train_data, b * o.bptt, o.bptt, in, tg);
            tape.clear();
            Var loss = model->loss(tape, in, tg, o.batch_size, hidden, rng, true);
            const double lv = loss.value()(0, 0);
            if (!std::isfinite(lv)) {
                say(fmt::format("error: the training loss became {} at epoch {} batch {}; stopping. The last good "
                                "checkpoints ({}, {}) are kept.", lv, prog.epoch, b + 1, o.save, resume_file));
                res.stopped_non_finite = true;
                return res;
            }
            tape.backward(loss);
            const ClipResult cr = o.clip > 0 ? clip_grad_norm(params, o.clip) : ClipResult{grad_norm(params), true, false};
            if (!std::isfinite(cr.norm)) {
                say(fmt::format("error: the gradient norm became {} at epoch {} batch {}; stopping. The last good "
                                "checkpoints ({}, {}) are kept.", cr.norm, prog.epoch, b + 1, o.save, resume_file));
                res.stopped_non_finite = true;
                return res;
            }
            opt->lr = plateau.lr();
            opt->step();
            opt->zero_grad();
            prog.batch = b + 1;
            ++prog.total_batches;
            ++res.batches;
            interval_loss += lv;
            interval_norm += cr.norm;
            ++interval_batches;
            interval_tokens += n * o.batch_size;
            if (interval_batches == o.log_interval || b + 1 == nbatches) {
                const double el = now() - interval_start;
                const double cur = interval_loss / static_cast<double>(interval_batches);
                const double lr = plateau.lr();
                say(fmt::format("| epoch {:3d} | {:5d}/{:5d} batches | lr {} | ms/batch {:7.2f} | tok/s {:7.0f} | "
                                "loss {:5.2f} | ppl {:8.2f} | grad norm {:6.2f}",
                                prog.epoch, b + 1, nbatches, lr >= 0.01 ? fmt::format("{:05.2f}", lr) : fmt::format("{:.2e}", lr), el * 1000 / static_cast<double>(interval_batches),
                                static_cast<double>(interval_tokens) / el, cur, perplexity(cur),
                                interval_norm / static_cast<double>(interval_batches)));
                metrics.line(fmt::format(
                    R"({{"event":"train","epoch":{},"batch":{},"batches":{},"lr":{},"ms_per_batch":{},"tokens_per_s":{},"loss":{},"ppl":{},"grad_norm":{}}})",
                    prog.epoch, b + 1, nbatches, jnum(plateau.lr()), jnum(el * 1000 / static_cast<double>(interval_batches)),
                    jnum(static_cast<double>(interval_tokens) / el), jnum(cur), jnum(perplexity(cur)),
                    jnum(interval_norm / static_cast<double>(interval_batches))));
                timed += el;
                timed_tokens += interval_tokens;
                interval_start = now();
                interval_loss = interval_norm = 0.0;
                interval_batches = interval_tokens = 0;
            }
            if (o.stop_after && prog.total_batches >= o.stop_after && b + 1 < nbatches) {
                save_resume();
                say(fmt::format("stopped after {} batches as asked; resume with --resume {}", prog.total_batches, resume_file));
                res.stopped_early = true;
                return res;
            }
            if (o.checkpoint_interval && prog.total_batches % o.checkpoint_interval == 0 && b + 1 < nbatches) save_resume();
        }
        const double epoch_time = now() - epoch_start;
        const double ve = now();
        const bool averaged = ntasgd && ntasgd->averaging();
        if (averaged) ntasgd->swap_average();  // evaluate (and save) the averaged weights
        const double val = evaluate(*model, val_data, o.bptt, o.eval_max_batches);
        say(std::string(89, '-'));
        say(fmt::format("| end of epoch {:3d} | time: {:6.2f}s | valid loss {:5.2f} | valid ppl {:8.2f} | eval {:.1f}s",
                        prog.epoch, epoch_time, val, perplexity(val), now() - ve));
        say(std::string(89, '-'));
        metrics.line(fmt::format(R"({{"event":"epoch","epoch":{},"time_s":{},"val_loss":{},"val_ppl":{},"lr":{}}})",
                                 prog.epoch, jnum(epoch_time), jnum(val), jnum(perplexity(val)), jnum(plateau.lr())));
        const bool improved = val < plateau.best();
        plateau.step(val);
        if (improved) {
            best_weights = StateDict();
            save_checkpoint(o.save, *model, corpus.vocab, corpus.level);
            model->save_weights(best_weights);
        }
        if (averaged) ntasgd->swap_average();  // back to the iterate training continues from
        if (ntasgd && ntasgd->observe(val)) say("NT-ASGD: validation stopped improving; averaging the weights from now on");
        ++prog.epoch;  // the resume point is the start of the next epoch
        prog.batch = 0;
        save_resume();
        --prog.epoch;  // the loop header steps it again
        if (o.stop_after && prog.total_batches >= o.stop_after && prog.epoch < o.epochs) {
            say(fmt::format("stopped after {} batches as asked; resume with --resume {}", prog.total_batches, resume_file));
            res.stopped_early = true;
            return res;
        }
    }
    res.train_seconds = timed;
    res.tokens_per_second = timed > 0 ? static_cast<double>(timed_tokens) / timed : 0.0;
    res.best_val_loss = plateau.best();
    if (!best_weights.tensors.empty()) model->load_weights(best_weights, "best weights");
    res.test_loss = evaluate(*model, test_data, o.bptt, o.eval_max_batches);
    say(std::string(89, '='));
    say(fmt::format("| End of training | {} loss {:5.2f} | {} ppl {:8.2f} | best valid ppl {:8.2f}", corpus.test_name,
                    res.test_loss, corpus.test_name, perplexity(res.test_loss), perplexity(res.best_val_loss)));
    say(std::string(89, '='));
    metrics.line(fmt::format(R"({{"event":"test","split":"{}","loss":{},"ppl":{},"best_val_loss":{}}})", corpus.test_name,
                             jnum(res.test_loss), jnum(perplexity(res.test_loss)), jnum(res.best_val_loss)));
    return res;
}

}  // namespace xtgrad
